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

struct Q {
    using I = __m256i;
    static constexpr int kLevels = 127;
    static I zero() { return _mm256_setzero_si256(); }
    static I load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static I loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static I set1(int32_t x) { return _mm256_set1_epi32(x); }
    static I add(I a, I b) { return _mm256_add_epi32(a, b); }
    static I dot4(I acc, I a, I w) {
        const I pairs = _mm256_maddubs_epi16(a, w);  // no saturation: a <= 127
        return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
    static I sub_mul(I acc, I zp, I rs) { return _mm256_sub_epi32(acc, _mm256_mullo_epi32(zp, rs)); }
    static __m256 to_float(I a) { return _mm256_cvtepi32_ps(a); }
    // Simd::L floats quantized: their bytes in the low lanes.
    static __m128i bytes_of(const float* x, __m256 inv, I zp) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
        v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-1024.0f)), _mm256_set1_ps(1024.0f));
        I q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
        q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(kLevels));
        const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        return _mm_packus_epi16(words, words);
    }
    static void quads(const float* x, __m256 inv, I zp, uint32_t* dst, int64_t ws) {
        const __m128i bytes = bytes_of(x, inv, zp);
        dst[0] = uint32_t(_mm_cvtsi128_si32(bytes));
        dst[ws] = uint32_t(_mm_extract_epi32(bytes, 1));
    }
    static void quads_contiguous(const float* x, __m256 inv, I zp, uint32_t* dst) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), bytes_of(x, inv, zp));
    }
};

#include "spmm_kernel.inl"
#include "spmm_int8.inl"

}  // namespace

int lanes() { return Simd::L; }
int levels() { return Q::kLevels; }
void quantize(const SpmmProblem& p, const float* x, int64_t w_valid, int64_t w_pad, uint32_t* xq, float* scale,
              int32_t* zero) {
    quantize_tile(p, x, w_valid, w_pad, xq, scale, zero);
}
void rows(const TileArgs& a, const Q8Tile& q) { q8_rows_impl(a, q); }

}  // namespace q8_avx2
}  // namespace pruneofa
