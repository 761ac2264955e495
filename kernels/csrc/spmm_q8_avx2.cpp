// INT8 compute with AVX2: vpmaddubsw + vpmaddwd (compiled with -mavx2 -mfma). vpmaddubsw adds two u8 x s8
// products into a saturating int16, and 255 x 127 x 2 > 32767, so activations get 8 bits only where the
// layer's weights stay within [-64, 64] (255 x 64 x 2 = 32640 fits: what NNCF's overflow fix writes, and
// what `pruneofa calibrate` writes on a CPU without VNNI/AMX): route q8_avx2_w7. Otherwise q8_avx2
// quantizes activations to 7 bits (0..127): 127 x 127 x 2 = 32258 and 127 x -128 x 2 = -32512 always fit.
// spmm_int8_dispatch.cpp picks per layer (a fused pair: both layers must fit).
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

// The route's dot product; `levels` is the largest activation it may be given without saturating.
#define PRUNEOFA_Q8_AVX2_ROUTE(levels)                                                       \
    struct Route {                                                                          \
        static constexpr int kLevels = levels;                                              \
        static __m256i dot4(__m256i acc, __m256i a, __m256i w) {                            \
            const __m256i pairs = _mm256_maddubs_epi16(a, w); /* never saturates, above */ \
            return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));   \
        }                                                                                   \
    };

namespace pruneofa {
namespace q8_avx2 {
namespace {
#include "simd_avx2.inl"
PRUNEOFA_Q8_AVX2_ROUTE(127)
}  // namespace
#include "spmm_int8.inl"
}  // namespace q8_avx2

namespace q8_avx2_w7 {
namespace {
#include "simd_avx2.inl"
PRUNEOFA_Q8_AVX2_ROUTE(255)
}  // namespace
#include "spmm_int8.inl"
}  // namespace q8_avx2_w7
}  // namespace pruneofa

#undef PRUNEOFA_Q8_AVX2_ROUTE
