// The data-cache sizes the token-tile width is derived from (spmm_dispatch.cpp, tile_width): read once
// when the library loads. No OpenVINO here (the sanitizer driver uses it too).
#pragma once

#include <cstdint>

namespace pruneofa {

struct CacheSizes {
    int64_t l1d = 0;                // bytes per core; 0 when unknown
    int64_t l2 = 0;                 // bytes per core; 0 when unknown
    const char* source = "unknown"; // "PRUNEOFA_KERNELS_CACHE_SIZES", "sysfs", "sysconf" or "unknown"
};

// Reads the sizes now: PRUNEOFA_KERNELS_CACHE_SIZES="l1d,l2" (bytes, or with a K / M suffix) when set and
// well formed (tests, or a machine that reports its caches wrongly), else cpu0's caches in
// /sys/devices/system/cpu/cpu0/cache, else sysconf(_SC_LEVEL1_DCACHE_SIZE / _SC_LEVEL2_CACHE_SIZE), else
// unknown.
CacheSizes detect_cache_sizes();

// The sizes read when the library loaded.
const CacheSizes& cache_sizes();

}  // namespace pruneofa
