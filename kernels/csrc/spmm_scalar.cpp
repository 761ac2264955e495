// The portable path: the same kernel over an 8-float struct that any C++ compiler handles (and may
// vectorize for the baseline ISA). Also the fallback on CPUs without AVX2.
#include "spmm_types.hpp"

namespace pruneofa {
namespace isa_scalar {
namespace {

struct Simd {
    static constexpr int L = 8;
    struct V {
        float v[L];
    };
    static V zero() {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = 0.0f;
        return r;
    }
    static V load(const float* p) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = p[i];
        return r;
    }
    static void store(float* p, const V& a) {
        for (int i = 0; i < L; ++i) p[i] = a.v[i];
    }
    static V set1(float x) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = x;
        return r;
    }
    static V fmadd(const V& a, const V& b, const V& c) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
        return r;
    }
    static V add(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] + b.v[i];
        return r;
    }
    static V mul(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] * b.v[i];
        return r;
    }
    static V div(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] / b.v[i];
        return r;
    }
    static V min(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
    static V max(const V& a, const V& b) {
        V r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
        return r;
    }
};

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
