// INT8 compute with AVX2: vpmaddubsw + vpmaddwd (compiled with -mavx2 -mfma). vpmaddubsw adds two u8 x s8
// products into a saturating int16, and 255 x 127 x 2 > 32767, so this route quantizes activations to 7
// bits (0..127): 127 x 127 x 2 = 32258 and 127 x -128 x 2 = -32512 always fit.
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

namespace pruneofa {
namespace q8_avx2 {
namespace {

#include "simd_avx2.inl"

struct Route {
    static constexpr int kLevels = 127;
    static __m256i dot4(__m256i acc, __m256i a, __m256i w) {
        const __m256i pairs = _mm256_maddubs_epi16(a, w);  // no saturation: a <= 127
        return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
};

}  // namespace

#include "spmm_int8.inl"

}  // namespace q8_avx2
}  // namespace pruneofa
