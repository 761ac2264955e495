// INT8 compute in portable C++: the reference every vector route is tested against (same quantization,
// same int32 sums), and the fallback on CPUs without AVX2.
#include "spmm_types.hpp"

namespace pruneofa {
namespace q8_scalar {
namespace {

#include "simd_scalar.inl"

struct Route {
    static constexpr int kLevels = 255;
    // Per lane: sum over the 4 bytes of u8(a) x s8(w).
    static SimdI::I dot4(const SimdI::I& acc, const SimdI::I& a, const SimdI::I& w) {
        SimdI::I r;
        for (int i = 0; i < Simd::L; ++i) {
            const uint32_t ua = uint32_t(a.v[i]), uw = uint32_t(w.v[i]);
            int32_t sum = acc.v[i];
            for (int b = 0; b < 4; ++b)
                sum += int32_t((ua >> (8 * b)) & 0xffu) * int32_t(int8_t(uint8_t((uw >> (8 * b)) & 0xffu)));
            r.v[i] = sum;
        }
        return r;
    }
};

}  // namespace

#include "spmm_int8.inl"

}  // namespace q8_scalar
}  // namespace pruneofa
