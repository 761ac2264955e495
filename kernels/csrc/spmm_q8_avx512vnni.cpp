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

struct Q {
    using I = __m512i;
    static constexpr int kLevels = 255;
    static I zero() { return _mm512_setzero_si512(); }
    static I load(const uint32_t* p) { return _mm512_loadu_si512(p); }
    static I loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
    static I set1(int32_t x) { return _mm512_set1_epi32(x); }
    static I add(I a, I b) { return _mm512_add_epi32(a, b); }
    static I dot4(I acc, I a, I w) { return _mm512_dpbusd_epi32(acc, a, w); }
    static I sub_mul(I acc, I zp, I rs) { return _mm512_sub_epi32(acc, _mm512_mullo_epi32(zp, rs)); }
    static __m512 to_float(I a) { return _mm512_cvtepi32_ps(a); }
    // Simd::L floats quantized: their bytes in the low lanes.
    static __m128i bytes_of(const float* x, __m512 inv, I zp) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x), inv);
        v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-1024.0f)), _mm512_set1_ps(1024.0f));
        I q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(kLevels));
        return _mm512_cvtepi32_epi8(q);
    }
    static void quads(const float* x, __m512 inv, I zp, uint32_t* dst, int64_t ws) {
        const __m128i bytes = bytes_of(x, inv, zp);
        dst[0] = uint32_t(_mm_cvtsi128_si32(bytes));
        dst[ws] = uint32_t(_mm_extract_epi32(bytes, 1));
        dst[2 * ws] = uint32_t(_mm_extract_epi32(bytes, 2));
        dst[3 * ws] = uint32_t(_mm_extract_epi32(bytes, 3));
    }
    static void quads_contiguous(const float* x, __m512 inv, I zp, uint32_t* dst) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes_of(x, inv, zp));
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

}  // namespace q8_avx512vnni
}  // namespace pruneofa
