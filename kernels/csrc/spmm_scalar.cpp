// The portable path: the same kernel over an 8-float struct that any C++ compiler handles (and may
// vectorize for the baseline ISA). Also the fallback on CPUs without AVX2.
#include "spmm_types.hpp"

namespace pruneofa {
namespace isa_scalar {
namespace {

#include "simd_scalar.inl"

#include "spmm_kernel.inl"

}  // namespace

int lanes() { return Simd::L; }
void transpose_in(const float* x, int64_t in_features, int64_t w_valid, int64_t w_pad, float* xt) {
    transpose_in_padded(x, in_features, w_valid, w_pad, xt);
}
void rows(const TileArgs& a) { rows_dispatch(a); }
void rows_to_tile(const TileArgs& a, float* ht) { rows_to_tile_dispatch(a, ht); }

}  // namespace isa_scalar
}  // namespace pruneofa
