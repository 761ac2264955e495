// AVX-512F path (compiled with -mavx512f -mavx2 -mfma; run only where the CPU has AVX-512F): 16 tokens
// per register, so a full tile is 128 tokens. Transposes reuse the AVX2 8x8 code.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own _mm512_undefined_ps() (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

namespace pruneofa {
namespace isa_avx512 {
namespace {

struct Simd {
    using V = __m512;
    static constexpr int L = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V a) { _mm512_storeu_ps(p, a); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    static V min(V a, V b) { return _mm512_min_ps(a, b); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
};

#include "spmm_kernel.inl"

}  // namespace

int lanes() { return Simd::L; }
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt) {
    transpose_in_padded(x, in_features, w_valid, w_pad, xt);
}
void rows(const TileArgs& a) { rows_dispatch(a); }
void rows_to_tile(const TileArgs& a, float* ht) { rows_to_tile_dispatch(a, ht); }

}  // namespace isa_avx512
}  // namespace pruneofa
