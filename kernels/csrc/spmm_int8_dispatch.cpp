// Around the INT8-compute kernels (spmm_int8.inl): the instruction route for an ISA, the row sums, and the
// tiling / threading of spmm_q8 (baseline flags only). Their checks are validate()'s (spmm_dispatch.cpp).
#include <algorithm>
#include <vector>

#include "spmm.hpp"

namespace pruneofa {
namespace {

struct Q8Ops {
    int (*lanes)();
    int (*levels)();
    void (*quantize)(const SpmmProblem&, const float*, int64_t, int64_t, uint32_t*, float*, int32_t*);
    void (*rows)(const TileArgs&, const Q8Tile&);
};

enum class Q8Route : int { Scalar, Avx2, AvxVnni, Avx512Vnni };

bool cpu_has_avx512vnni() {
#if defined(PRUNEOFA_HAVE_X86)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

bool cpu_has_avxvnni() {
#if defined(PRUNEOFA_HAVE_X86)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avxvnni") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// The widest route an ISA level may use: avx512 -> 512-bit VNNI where the CPU has it, else as avx2;
// avx2 -> AVX-VNNI where the CPU has it, else vpmaddubsw on 7-bit activations; scalar -> scalar.
Q8Route route_for(Isa isa) {
    if (!isa_supported(isa)) isa = Isa::Scalar;
    if (isa == Isa::Avx512 && cpu_has_avx512vnni()) return Q8Route::Avx512Vnni;
    if (isa == Isa::Scalar) return Q8Route::Scalar;
    return cpu_has_avxvnni() ? Q8Route::AvxVnni : Q8Route::Avx2;
}

Q8Ops q8_ops(Q8Route route) {
    switch (route) {
#if defined(PRUNEOFA_HAVE_X86)
        case Q8Route::Avx512Vnni:
            return {q8_avx512vnni::lanes, q8_avx512vnni::levels, q8_avx512vnni::quantize, q8_avx512vnni::rows};
        case Q8Route::AvxVnni: return {q8_avxvnni::lanes, q8_avxvnni::levels, q8_avxvnni::quantize, q8_avxvnni::rows};
        case Q8Route::Avx2: return {q8_avx2::lanes, q8_avx2::levels, q8_avx2::quantize, q8_avx2::rows};
#endif
        default: return {q8_scalar::lanes, q8_scalar::levels, q8_scalar::quantize, q8_scalar::rows};
    }
}

}  // namespace

void row_sums_of(const SpmmProblem& p, int32_t* out) {
    for (int64_t n = 0; n < p.out_features; ++n) {
        int32_t sum = 0;
        for (int64_t i = int64_t(p.row_ptr[n]) * 4; i < int64_t(p.row_ptr[n + 1]) * 4; ++i) sum += p.values_i8[i];
        out[n] = sum;
    }
}

const char* q8_route_name(Isa isa) {
    switch (route_for(isa)) {
        case Q8Route::Avx512Vnni: return "avx512vnni";
        case Q8Route::AvxVnni: return "avxvnni";
        case Q8Route::Avx2: return "avx2";
        case Q8Route::Scalar: return "scalar";
    }
    return "scalar";
}

int q8_levels(Isa isa) { return q8_ops(route_for(isa)).levels(); }

void spmm_q8(const SpmmProblem& p, Isa isa, const Parallel& par) {
    if (p.tokens <= 0 || p.out_features <= 0) return;
    const Q8Ops ops = q8_ops(route_for(isa));
    const int lanes = ops.lanes();
    const int threads = std::max(1, par.concurrency());
    // 32-token tiles (64 with 16 lanes when every thread still gets one): the quantized tile is a quarter
    // of the FP32 one, K x 32 bytes. Threads share the tokens as the FP32 paths do (split_work: contiguous
    // ranges cut at multiples of the lanes), with too few tokens the rows too (each such worker quantizes
    // its tiles itself). Quantization is per token and the sums are int32, so the split never changes a bit.
    const int64_t tile = lanes >= 16 && p.tokens >= 64 * int64_t(threads) ? 64 : 32;
    const int64_t units = (p.tokens + lanes - 1) / lanes;
    int64_t token_groups = 1, split_rows = 1;
    split_work(units, threads, &token_groups, &split_rows);
    const int64_t row_groups = std::min<int64_t>(split_rows, (p.out_features + 15) / 16);
    auto token_begin = [&](int64_t g) { return std::min(p.tokens, units * g / token_groups * lanes); };
    std::vector<int32_t> own_sums;
    const int32_t* sums = p.row_sums;
    if (sums == nullptr) {
        own_sums.resize(static_cast<size_t>(p.out_features));
        row_sums_of(p, own_sums.data());
        sums = own_sums.data();
    }
    // Row bounds in groups of 16 with about equal stored blocks each.
    std::vector<int64_t> bounds(static_cast<size_t>(row_groups + 1), p.out_features);
    bounds[0] = 0;
    const int64_t groups16 = (p.out_features + 15) / 16;
    int64_t g = 0;
    for (int64_t c = 1; c < row_groups; ++c) {
        const int64_t target = int64_t(p.row_ptr[p.out_features]) * c / row_groups;
        while (g < groups16 && p.row_ptr[std::min<int64_t>(g * 16, p.out_features)] < target) ++g;
        bounds[static_cast<size_t>(c)] = std::min<int64_t>(g * 16, p.out_features);
    }
    const int64_t kq = (p.in_features + 3) / 4;
    par.run(token_groups * row_groups, [&](int64_t c) {
        const int64_t tg = c / row_groups, rg = c % row_groups;
        std::vector<uint32_t> xq(static_cast<size_t>(std::max<int64_t>(1, kq * tile)));
        std::vector<float> scale(static_cast<size_t>(tile));
        std::vector<int32_t> zero(static_cast<size_t>(tile));
        const int64_t end = token_begin(tg + 1);
        for (int64_t t0 = token_begin(tg); t0 < end; t0 += tile) {
            TileArgs a{};
            a.p = &p;
            a.t0 = t0;
            a.w_valid = std::min(tile, end - t0);
            a.w_pad = (a.w_valid + lanes - 1) / lanes * lanes;
            a.row_begin = bounds[static_cast<size_t>(rg)];
            a.row_end = bounds[static_cast<size_t>(rg + 1)];
            if (a.row_begin >= a.row_end) continue;
            ops.quantize(p, p.x + a.t0 * p.in_features, a.w_valid, a.w_pad, xq.data(), scale.data(), zero.data());
            ops.rows(a, Q8Tile{xq.data(), scale.data(), zero.data(), sums});
        }
    });
}

}  // namespace pruneofa
