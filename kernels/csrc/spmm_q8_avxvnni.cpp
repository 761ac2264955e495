// INT8 compute with AVX-VNNI (the VEX-encoded 256-bit vpdpbusd of Alder Lake, Zen 5 and later; compiled
// with -mavx2 -mfma -mavxvnni, run only where the CPU has it): full 8-bit activations, no saturation.
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

namespace pruneofa {
namespace q8_avxvnni {
namespace {

#include "simd_avx2.inl"

struct Route {
    static constexpr int kLevels = 255;
    static __m256i dot4(__m256i acc, __m256i a, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, a, w); }
};

}  // namespace

#include "spmm_int8.inl"

}  // namespace q8_avxvnni
}  // namespace pruneofa
