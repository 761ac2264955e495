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

#include "simd_avx512.inl"

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
