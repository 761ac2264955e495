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
    void (*quantize_transposed)(const SpmmProblem&, const float*, int64_t, int64_t, uint32_t*, float*, int32_t*);
    void (*rows_to_tile)(const TileArgs&, const Q8Tile&, float*);
};

enum class Q8Route : int { Scalar, Avx2, AvxVnni, Avx512Vnni, Avx2W7 };

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

#define PRUNEOFA_Q8_OPS(route) \
    Q8Ops { route::lanes, route::levels, route::quantize, route::rows, route::quantize_transposed, route::rows_to_tile }

Q8Ops q8_ops(Q8Route route) {
    switch (route) {
#if defined(PRUNEOFA_HAVE_X86)
        case Q8Route::Avx512Vnni: return PRUNEOFA_Q8_OPS(q8_avx512vnni);
        case Q8Route::AvxVnni: return PRUNEOFA_Q8_OPS(q8_avxvnni);
        case Q8Route::Avx2: return PRUNEOFA_Q8_OPS(q8_avx2);
        case Q8Route::Avx2W7: return PRUNEOFA_Q8_OPS(q8_avx2_w7);
#endif
        default: return PRUNEOFA_Q8_OPS(q8_scalar);
    }
}

#undef PRUNEOFA_Q8_OPS

// The largest |INT8 value| of a layer: the recorded one, else from its values (the C API's callers).
int32_t weight_abs_max(const SpmmProblem& p) {
    if (p.weight_abs_max >= 0) return p.weight_abs_max;
    int32_t most = 0;
    const int64_t stored = int64_t(p.row_ptr[p.out_features]) * 4;
    for (int64_t i = 0; i < stored; ++i) {
        const int32_t v = p.values_i8[i] < 0 ? -int32_t(p.values_i8[i]) : int32_t(p.values_i8[i]);
        most = v > most ? v : most;
    }
    return most;
}

// The route for this layer: the ISA's, except that the avx2 route takes 8-bit activations where the
// layer's weights stay within [-64, 64] (then vpmaddubsw cannot saturate: 255 x 64 x 2 = 32640).
Q8Route route_for(Isa isa, const SpmmProblem& p) {
    const Q8Route route = route_for(isa);
    if (route != Q8Route::Avx2) return route;
    return weight_abs_max(p) <= kWeightAbsMax7Bit ? Q8Route::Avx2W7 : route;
}

// A layer's row sums: the precomputed ones, or computed into `own`.
const int32_t* row_sums_for(const SpmmProblem& p, std::vector<int32_t>* own) {
    if (p.row_sums != nullptr) return p.row_sums;
    own->resize(static_cast<size_t>(p.out_features));
    row_sums_of(p, own->data());
    return own->data();
}

// The token split of a fused INT8 pair: its tiles are the first layer's INT8 tile, the FP32 intermediate
// and that intermediate's INT8 tile (q8_tile_width).
TokenPlan q8_pair_plan(const SpmmProblem& first, Isa isa, int threads) {
    return TokenPlan(first.tokens, q8_ops(route_for(isa)).lanes(),
                     q8_tile_width(first.in_features, first.out_features, isa), std::max(1, threads));
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
        case Q8Route::Avx2W7: return "avx2";
        case Q8Route::Scalar: return "scalar";
    }
    return "scalar";
}

int q8_levels(Isa isa) { return q8_ops(route_for(isa)).levels(); }

int q8_levels_for(const SpmmProblem& p, Isa isa) { return q8_ops(route_for(isa, p)).levels(); }

int64_t q8_tile_width(int64_t in_features, int64_t hidden, Isa isa, const CacheSizes* cache) {
    int64_t bytes = q8_tile_bytes(in_features);
    if (hidden > 0) bytes += hidden * int64_t(sizeof(float)) + q8_tile_bytes(hidden);
    return tile_width_for(bytes, q8_ops(route_for(isa)).lanes(), cache);
}

void spmm_q8(const SpmmProblem& p, Isa isa, const Parallel& par) {
    if (p.tokens <= 0 || p.out_features <= 0) return;
    const Q8Ops ops = q8_ops(route_for(isa, p));
    // Tiles as wide as the caches allow for K bytes per token (q8_tile_width), threads sharing the tokens
    // as the FP32 paths do (TokenPlan: contiguous ranges cut at multiples of the lanes, as evenly as that
    // allows), with too few tokens the rows too (each such worker quantizes its tiles itself). Quantization
    // is per token and the sums are int32, so neither the width nor the split changes a bit.
    const TokenPlan plan(p.tokens, ops.lanes(), q8_tile_width(p.in_features, 0, isa),
                         std::max(1, par.concurrency()));
    std::vector<int32_t> own_sums;
    const int32_t* sums = row_sums_for(p, &own_sums);
    const std::vector<int64_t> bounds = partition_rows(p, plan.row_groups);
    const int64_t row_groups = static_cast<int64_t>(bounds.size()) - 1;  // fewer when there are few rows
    const int64_t kq = (p.in_features + 3) / 4, tile = plan.tile;
    par.run(plan.token_groups * row_groups, [&](int64_t c) {
        const int64_t tg = c / row_groups, rg = c % row_groups;
        std::vector<uint32_t> xq(static_cast<size_t>(std::max<int64_t>(1, kq * tile)));
        std::vector<float> scale(static_cast<size_t>(tile));
        std::vector<int32_t> zero(static_cast<size_t>(tile));
        for (int64_t t0 = plan.begin(tg); t0 < plan.end(tg); t0 += tile) {
            const TileArgs a = plan.args(p, nullptr, t0, plan.end(tg), bounds[static_cast<size_t>(rg)],
                                         bounds[static_cast<size_t>(rg + 1)]);
            if (a.row_begin >= a.row_end) continue;
            ops.quantize(p, p.x + a.t0 * p.in_features, a.w_valid, a.w_pad, xq.data(), scale.data(), zero.data());
            ops.rows(a, Q8Tile{xq.data(), scale.data(), zero.data(), sums});
        }
    });
}

bool q8_pair_fuses(const SpmmProblem& first, const SpmmProblem& second, Isa isa, int threads) {
    // Both layers on one route (on avx2 a layer whose weights fit 7 bits takes 8-bit activations, so two
    // layers that differ there run one after the other, each on its own), and every thread its own tokens.
    return first.tokens > 0 && route_for(isa, first) == route_for(isa, second) &&
           q8_pair_plan(first, isa, threads).row_groups == 1;
}

void spmm_q8_pair(const SpmmProblem& first, const SpmmProblem& second, Isa isa, const Parallel& par) {
    if (first.tokens <= 0 || second.out_features <= 0) return;
    const Q8Ops ops = q8_ops(route_for(isa, first));  // second's too (q8_pair_fuses)
    const TokenPlan plan = q8_pair_plan(first, isa, par.concurrency());
    std::vector<int32_t> own1, own2;
    const int32_t* sums1 = row_sums_for(first, &own1);
    const int32_t* sums2 = row_sums_for(second, &own2);
    const int64_t k = first.in_features, h = first.out_features, tile = plan.tile;
    const int64_t kq = (k + 3) / 4, hq = (h + 3) / 4;
    par.run(plan.token_groups, [&](int64_t tg) {
        // This worker's tiles, each through both layers: x quantized (kq x tile), the up layer's outputs in
        // FP32 (h x tile, transposed), those quantized per token (hq x tile), then the down layer.
        std::vector<uint32_t> xq(static_cast<size_t>(std::max<int64_t>(1, kq * tile)));
        std::vector<uint32_t> hq_tile(static_cast<size_t>(std::max<int64_t>(1, hq * tile)));
        std::vector<float> ht(static_cast<size_t>(std::max<int64_t>(1, h * tile)));
        std::vector<float> scale1(static_cast<size_t>(tile)), scale2(static_cast<size_t>(tile));
        std::vector<int32_t> zero1(static_cast<size_t>(tile)), zero2(static_cast<size_t>(tile));
        for (int64_t t0 = plan.begin(tg); t0 < plan.end(tg); t0 += tile) {
            const TileArgs a = plan.args(first, nullptr, t0, plan.end(tg), 0, h);
            ops.quantize(first, first.x + t0 * k, a.w_valid, a.w_pad, xq.data(), scale1.data(), zero1.data());
            ops.rows_to_tile(a, Q8Tile{xq.data(), scale1.data(), zero1.data(), sums1}, ht.data());
            ops.quantize_transposed(second, ht.data(), a.w_valid, a.w_pad, hq_tile.data(), scale2.data(),
                                    zero2.data());
            TileArgs b = a;
            b.p = &second;
            b.row_end = second.out_features;
            ops.rows(b, Q8Tile{hq_tile.data(), scale2.data(), zero2.data(), sums2});
        }
    });
}

}  // namespace pruneofa
