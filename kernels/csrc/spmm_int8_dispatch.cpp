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

int64_t q8_tile_width(int64_t in_features, int64_t hidden, Isa isa, const CacheSizes* cache) {
    int64_t bytes = q8_tile_bytes(in_features);
    if (hidden > 0) bytes += hidden * int64_t(sizeof(float)) + q8_tile_bytes(hidden);
    return tile_width_for(bytes, q8_ops(route_for(isa)).lanes(), cache);
}

void spmm_q8(const SpmmProblem& p, Isa isa, const Parallel& par) {
    if (p.tokens <= 0 || p.out_features <= 0) return;
    const Q8Ops ops = q8_ops(route_for(isa));
    // Tiles as wide as the caches allow for K bytes per token (q8_tile_width), threads sharing the tokens
    // as the FP32 paths do (TokenPlan: contiguous ranges cut at multiples of the lanes, as evenly as that
    // allows), with too few tokens the rows too (each such worker quantizes its tiles itself). Quantization
    // is per token and the sums are int32, so neither the width nor the split changes a bit.
    const TokenPlan plan(p.tokens, ops.lanes(), q8_tile_width(p.in_features, 0, isa),
                         std::max(1, par.concurrency()));
    std::vector<int32_t> own_sums;
    const int32_t* sums = p.row_sums;
    if (sums == nullptr) {
        own_sums.resize(static_cast<size_t>(p.out_features));
        row_sums_of(p, own_sums.data());
        sums = own_sums.data();
    }
    const std::vector<int64_t> bounds = partition_rows(p, plan.row_groups);
    const int64_t row_groups = static_cast<int64_t>(bounds.size()) - 1;  // fewer when there are few rows
    const int64_t kq = (p.in_features + 3) / 4, tile = plan.tile;
    par.run(plan.token_groups * row_groups, [&](int64_t c) {
        const int64_t tg = c / row_groups, rg = c % row_groups;
        std::vector<uint32_t> xq(static_cast<size_t>(std::max<int64_t>(1, kq * tile)));
        std::vector<float> scale(static_cast<size_t>(tile));
        std::vector<int32_t> zero(static_cast<size_t>(tile));
        for (int64_t t0 = plan.begin(tg); t0 < plan.end(tg); t0 += tile) {
            TileArgs a{};
            a.p = &p;
            a.t0 = t0;
            a.w_valid = std::min(tile, plan.end(tg) - t0);
            a.w_pad = (a.w_valid + plan.lanes - 1) / plan.lanes * plan.lanes;
            a.row_begin = bounds[static_cast<size_t>(rg)];
            a.row_end = bounds[static_cast<size_t>(rg + 1)];
            if (a.row_begin >= a.row_end) continue;
            ops.quantize(p, p.x + a.t0 * p.in_features, a.w_valid, a.w_pad, xq.data(), scale.data(), zero.data());
            ops.rows(a, Q8Tile{xq.data(), scale.data(), zero.data(), sums});
        }
    });
}

}  // namespace pruneofa
