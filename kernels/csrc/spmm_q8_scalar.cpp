// INT8 compute in portable C++: the reference every vector route is tested against (same quantization,
// same int32 sums), and the fallback on CPUs without AVX2.
#include "spmm_types.hpp"

namespace pruneofa {
namespace q8_scalar {
namespace {

#include "simd_scalar.inl"

struct Q {
    static constexpr int L = Simd::L;
    struct I {
        int32_t v[L];
    };
    static constexpr int kLevels = 255;
    static I zero() { return set1(0); }
    static I load(const uint32_t* p) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = int32_t(p[i]);
        return r;
    }
    static I loadi(const int32_t* p) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = p[i];
        return r;
    }
    static I set1(int32_t x) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = x;
        return r;
    }
    static I add(const I& a, const I& b) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = a.v[i] + b.v[i];
        return r;
    }
    // Per lane: sum over the 4 bytes of u8(a) x s8(w).
    static I dot4(const I& acc, const I& a, const I& w) {
        I r;
        for (int i = 0; i < L; ++i) {
            const uint32_t ua = uint32_t(a.v[i]), uw = uint32_t(w.v[i]);
            int32_t sum = acc.v[i];
            for (int b = 0; b < 4; ++b)
                sum += int32_t((ua >> (8 * b)) & 0xffu) * int32_t(int8_t(uint8_t((uw >> (8 * b)) & 0xffu)));
            r.v[i] = sum;
        }
        return r;
    }
    static I sub_mul(const I& acc, const I& zp, const I& rs) {
        I r;
        for (int i = 0; i < L; ++i) r.v[i] = acc.v[i] - zp.v[i] * rs.v[i];
        return r;
    }
    static Simd::V to_float(const I& a) {
        Simd::V r;
        for (int i = 0; i < L; ++i) r.v[i] = float(a.v[i]);
        return r;
    }
    static void quads(const float* x, const Simd::V& inv, const I& zp, uint32_t* dst, int64_t ws);
};

#include "spmm_kernel.inl"
#include "spmm_int8.inl"

void Q::quads(const float* x, const Simd::V& inv, const I& zp, uint32_t* dst, int64_t ws) {
    for (int qd = 0; qd < L / 4; ++qd) {
        uint32_t packed = 0;
        for (int b = 0; b < 4; ++b) packed |= quantize_one(x[qd * 4 + b], inv.v[0], zp.v[0]) << (8 * b);
        dst[qd * ws] = packed;
    }
}

}  // namespace

int lanes() { return Simd::L; }
int levels() { return Q::kLevels; }
void quantize(const SpmmProblem& p, const float* x, int64_t w_valid, int64_t w_pad, uint32_t* xq, float* scale,
              int32_t* zero) {
    quantize_tile(p, x, w_valid, w_pad, xq, scale, zero);
}
void rows(const TileArgs& a, const Q8Tile& q) { q8_rows_impl(a, q); }

}  // namespace q8_scalar
}  // namespace pruneofa
