// AVX2 + FMA path (compiled with -mavx2 -mfma; run only where the CPU has both).
#include <immintrin.h>
#define PRUNEOFA_AVX2_TRANSPOSE 1

#include "spmm_types.hpp"

namespace pruneofa {
namespace isa_avx2 {
namespace {

#include "simd_avx2.inl"

#include "spmm_kernel.inl"

}  // namespace

int lanes() { return Simd::L; }
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt) {
    transpose_in_padded(x, in_features, w_valid, w_pad, xt);
}
void rows(const TileArgs& a) { rows_dispatch(a); }
void rows_to_tile(const TileArgs& a, float* ht) { rows_to_tile_dispatch(a, ht); }

}  // namespace isa_avx2
}  // namespace pruneofa
