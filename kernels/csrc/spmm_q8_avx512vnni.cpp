// INT8 compute with AVX512-VNNI: 512-bit vpdpbusd, 16 tokens x 4 inputs per instruction (compiled with
// -mavx512f -mavx512bw -mavx512vnni; run only where the CPU has them).
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own _mm512_undefined_ps() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

namespace pruneofa {
namespace q8_avx512vnni {
namespace {

#include "simd_avx512.inl"

struct Route {
    static constexpr int kLevels = 255;
    static __m512i dot4(__m512i acc, __m512i a, __m512i w) { return _mm512_dpbusd_epi32(acc, a, w); }
};

}  // namespace

#include "spmm_int8.inl"

}  // namespace q8_avx512vnni
}  // namespace pruneofa
