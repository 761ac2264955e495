// ISA choice, token tiling, row partitioning and scratch memory: everything around the per-ISA kernels
// that needs the standard library (compiled with baseline flags only).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu_cache.hpp"
#include "layer_layout.hpp"
#include "spmm.hpp"

namespace pruneofa {
namespace {

struct IsaOps {
    int (*lanes)();
    void (*transpose_in)(const float*, int64_t, int64_t, int64_t, float*);
    void (*rows)(const TileArgs&);
    void (*rows_to_tile)(const TileArgs&, float*);
};

bool cpu_has(Isa isa) {
#if defined(PRUNEOFA_HAVE_X86)
    __builtin_cpu_init();
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::Avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
                                 __builtin_cpu_supports("fma");
    }
    return false;
#else
    return isa == Isa::Scalar;
#endif
}

Isa best_isa() {
    if (isa_supported(Isa::Avx512)) return Isa::Avx512;
    if (isa_supported(Isa::Avx2)) return Isa::Avx2;
    return Isa::Scalar;
}

Isa initial_isa() {
    const char* env = std::getenv("PRUNEOFA_KERNELS_ISA");
    Isa wanted;
    if (env != nullptr && *env != '\0' && parse_isa(env, &wanted) && isa_supported(wanted)) return wanted;
    return best_isa();
}

int initial_tile() {
    const char* env = std::getenv("PRUNEOFA_KERNELS_TILE");
    return env != nullptr ? std::max(0, std::atoi(env)) : 0;
}

std::atomic<int> g_isa{static_cast<int>(initial_isa())};
std::atomic<int> g_tile{initial_tile()};

IsaOps ops_for(Isa isa) {
    switch (isa) {
#if defined(PRUNEOFA_HAVE_X86)
        case Isa::Avx512:
            return {isa_avx512::lanes, isa_avx512::transpose_in, isa_avx512::rows, isa_avx512::rows_to_tile};
        case Isa::Avx2: return {isa_avx2::lanes, isa_avx2::transpose_in, isa_avx2::rows, isa_avx2::rows_to_tile};
#endif
        default: return {isa_scalar::lanes, isa_scalar::transpose_in, isa_scalar::rows, isa_scalar::rows_to_tile};
    }
}

// Tokens per tile, from the per-core L2 (docs/kernels.md, "Tile width"): the loop streams each output row's
// weights against an L2-resident tile of `bytes` per token (FP32: K floats, or K + H for a fused pair's
// two tiles; INT8 compute: its quads, step and zero point), so the tile takes the widest of 64 / 32 / 16
// tokens (at most 4 vectors: the kernel keeps two accumulator sets at every width, so a token's sum does
// not depend on the tile) that fills at most half of L2, the other half left to the weights and outputs
// streaming through. On Zen 5 (1 MB L2) that gives 64 AVX-512 / 32 AVX2 tokens at MiniLM's and BERT-Base's
// FP32 shapes, the widths measured best there; on Zen 3 (512 KB) BERT-Base's 3072-wide FP32 layers drop to
// 16. Unknown caches: those Zen 5 widths. PRUNEOFA_KERNELS_TILE / set_tile_tokens override it for tuning.
int64_t round_to_lanes(int64_t tokens, int lanes) { return (tokens + lanes - 1) / lanes * lanes; }

int64_t cache_tile_width(int64_t bytes, int lanes, const CacheSizes& cache) {
    const int64_t widest = 4 * int64_t(lanes);
    const int64_t narrowest = round_to_lanes(16, lanes);
    if (cache.l2 <= 0) return widest;
    const int64_t budget = cache.l2 / 2;
    int64_t width = widest;
    while (width > narrowest && std::max<int64_t>(1, bytes) * width > budget)
        width = std::max(narrowest, round_to_lanes(width / 2, lanes));
    return width;
}

int64_t tile_tokens(int64_t bytes, int lanes) {
    const int forced = g_tile.load(std::memory_order_relaxed);
    if (forced > 0) return std::min<int64_t>(4 * int64_t(lanes), round_to_lanes(forced, lanes));
    return cache_tile_width(bytes, lanes, cache_sizes());
}

int64_t fp32_tile_bytes(int64_t rows) { return std::max<int64_t>(1, rows) * int64_t(sizeof(float)); }

// Scratch for a transposed activation tile: a per-thread buffer reused across calls (no allocation in
// the steady state). Each worker uses its own; OpenVINO may run evaluate() on several threads at once
// (NUM_STREAMS > 1), which then also use their own; a nested use on one thread allocates privately.
struct ThreadScratch {
    float* data = nullptr;
    size_t capacity = 0;  // floats
    bool busy = false;
    ~ThreadScratch() { std::free(data); }
};
thread_local ThreadScratch t_scratch;

class ScratchLease {
public:
    explicit ScratchLease(size_t floats) {
        const size_t bytes = std::max<size_t>(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!t_scratch.busy) {
            if (t_scratch.capacity < floats) {
                std::free(t_scratch.data);
                t_scratch.data = static_cast<float*>(std::aligned_alloc(64, bytes));
                t_scratch.capacity = t_scratch.data != nullptr ? floats : 0;
            }
            if (t_scratch.data == nullptr) throw std::bad_alloc();
            t_scratch.busy = true;
            data_ = t_scratch.data;
            shared_ = true;
        } else {
            data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
            if (data_ == nullptr) throw std::bad_alloc();
        }
    }
    ~ScratchLease() {
        if (shared_)
            t_scratch.busy = false;
        else
            std::free(data_);
    }
    ScratchLease(const ScratchLease&) = delete;
    ScratchLease& operator=(const ScratchLease&) = delete;
    float* data() const { return data_; }

private:
    float* data_ = nullptr;
    bool shared_ = false;
};

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "unknown";
}

bool parse_isa(const char* name, Isa* out) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (std::strcmp(name, isa_name(isa)) == 0) {
            *out = isa;
            return true;
        }
    }
    return false;
}

bool isa_compiled(Isa isa) {
#if defined(PRUNEOFA_HAVE_X86)
    (void)isa;
    return true;
#else
    return isa == Isa::Scalar;
#endif
}

bool isa_supported(Isa isa) { return isa_compiled(isa) && cpu_has(isa); }

Isa active_isa() { return static_cast<Isa>(g_isa.load(std::memory_order_relaxed)); }

bool set_active_isa(Isa isa) {
    if (!isa_supported(isa)) return false;
    g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
    return true;
}

void set_tile_tokens(int tokens) { g_tile.store(std::max(0, tokens), std::memory_order_relaxed); }

int tile_tokens_forced() { return g_tile.load(std::memory_order_relaxed); }

int64_t tile_width_for(int64_t bytes_per_token, int lanes, const CacheSizes* cache) {
    return cache != nullptr ? cache_tile_width(bytes_per_token, lanes, *cache) : tile_tokens(bytes_per_token, lanes);
}

int64_t tile_width(int64_t rows, Isa isa, const CacheSizes* cache) {
    const int lanes = isa == Isa::Avx512 ? 16 : 8;  // each ISA's vector width in floats (its lanes())
    return tile_width_for(fp32_tile_bytes(rows), lanes, cache);
}

const char* validate(const SpmmProblem& p, int64_t n_blocks) {
    if (p.block != 1 && p.block != 2 && p.block != 4 && p.block != 8) return "block must be 1, 2, 4 or 8";
    if (p.activation != kActivationNone && p.activation != kActivationGeluErf) return "unknown activation";
    if (p.part_rows < 0 || (p.part_rows > 0 && (p.out_features % p.part_rows != 0 || p.part_rows % 16 != 0 ||
                                                p.y_parts == nullptr)))
        return "a split output needs part_rows dividing out_features, a multiple of 16, and its outputs";
    if (p.head_dim < 0 ||
        (p.head_dim > 0 && (p.part_rows <= 0 || p.part_rows % p.head_dim != 0 ||
                            p.seq_len < 0 || (p.seq_len == 0 ? p.tokens != 0 : p.tokens % p.seq_len != 0))))
        return "the heads' layout needs a split output, head_dim dividing part_rows, and seq_len dividing tokens";
    if (p.in_features < 0 || p.out_features < 0) return "negative feature count";
    if (p.in_features > kMaxFeatures || p.out_features > kMaxFeatures) return "feature count too large";
    if (const char* err = check_compute(p.in_features, p.out_features, p.block, p.int8, p.block_rows, p.act_quant,
                                        p.act_scale, p.act_zero_point))
        return err;
    if (n_blocks > 0 && (p.int8 ? p.values_i8 == nullptr : p.values_f32 == nullptr)) return "values missing";
    if (p.int8 && p.out_features > 0 && p.scales == nullptr) return "INT8 values need per-row scales";
    if (p.act_multiplier != nullptr && p.act_quant != kActQuantStatic)
        return "an activation multiplier needs static INT8 compute";
    return check_structure(p.row_ptr, p.out_features / p.block_rows, p.col_idx, n_blocks, p.in_features, p.block,
                           nullptr, p.act_quant != kActQuantNone);
}

// The token split: `token_groups` contiguous token ranges times `row_groups` ranges of output rows for
// `threads` workers. Splitting tokens needs no sharing at all (each worker transposes its own tokens into
// its own cache and reads all weights), and a fused pair keeps its intermediate per worker; splitting rows
// is for too few tokens. Token ranges are cut at multiples of the lanes, as evenly as that allows (`units`
// lane groups in all).
void split_work(int64_t units, int threads, int64_t* token_groups, int64_t* row_groups) {
    int64_t best = 1;
    for (int64_t d = 1; d <= threads; ++d)
        if (threads % d == 0 && d <= units && (units % d == 0 || units >= 2 * d)) best = d;
    *token_groups = best;
    *row_groups = threads / best;
}

TokenPlan::TokenPlan(int64_t tokens_, int lanes_, int64_t tile_, int threads)
    : lanes(lanes_), tokens(tokens_), tile(tile_), units((tokens_ + lanes_ - 1) / lanes_) {
    split_work(units, threads, &token_groups, &row_groups);
}

int64_t TokenPlan::begin(int64_t g) const { return std::min(tokens, units * g / token_groups * lanes); }

// Splits output rows (in groups of 16, the kernel's store unit) into `chunks` ranges of about equal work (stored values plus a
// per-row cost for the epilogue), so that threads finish together on unevenly pruned matrices.
std::vector<int64_t> partition_rows(const SpmmProblem& p, int64_t chunks) {
    const int64_t n = p.out_features;
    constexpr int64_t kRows = 16;
    const int64_t groups = (n + kRows - 1) / kRows;
    chunks = std::max<int64_t>(1, std::min(chunks, groups));
    auto cost = [&](int64_t group) {
        const int64_t row = std::min(group * kRows, n);
        if (p.block_rows == 4) return int64_t(p.row_ptr[row / 4]) * 4 + row * 4;
        return int64_t(p.row_ptr[row]) * p.block + row * 4;
    };
    std::vector<int64_t> bounds(chunks + 1, 0);
    const int64_t total = cost(groups);
    int64_t group = 0;
    for (int64_t c = 1; c < chunks; ++c) {
        const int64_t target = total * c / chunks;
        while (group < groups && cost(group) < target) ++group;
        bounds[c] = std::min(group * kRows, n);
    }
    bounds[chunks] = n;
    return bounds;
}

namespace {

// How one FP32 call is cut up: the ISA's operations, the tile width (from `rows` floats per token in a
// worker's tiles: K, or K + H for a fused pair) and the work split (TokenPlan). Computed once per call;
// spmm, pair_fuses and spmm_pair share it. Every token's sum is formed the same way whatever tile or range
// holds it, so the output does not depend on the thread count.
struct TilePlan : TokenPlan {
    IsaOps ops;

    TilePlan(const SpmmProblem& p, Isa isa, int threads, int64_t rows)
        : TokenPlan(p.tokens, ops_for(isa).lanes(), tile_tokens(fp32_tile_bytes(rows), ops_for(isa).lanes()), threads),
          ops(ops_for(isa)) {}

};

Isa usable(Isa isa) { return isa_supported(isa) ? isa : Isa::Scalar; }

}  // namespace

void spmm(const SpmmProblem& p, Isa isa, const Parallel& par) {
    if (p.act_quant != kActQuantNone) return spmm_q8(p, isa, par);
    if (p.tokens <= 0 || p.out_features <= 0) return;
    const int64_t k = p.in_features;
    TilePlan plan(p, usable(isa), std::max(1, par.concurrency()), k);
    const std::vector<int64_t> bounds = partition_rows(p, plan.row_groups);
    const int64_t row_groups = static_cast<int64_t>(bounds.size()) - 1;  // fewer when there are few rows
    par.run(plan.token_groups * row_groups, [&](int64_t c) {
        const int64_t tg = c / row_groups, rg = c % row_groups;
        // One tile at a time in this worker's own scratch (thread-local: see ScratchLease).
        ScratchLease scratch(static_cast<size_t>(std::max<int64_t>(1, k * plan.tile)));
        for (int64_t t0 = plan.begin(tg); t0 < plan.end(tg); t0 += plan.tile) {
            const TileArgs a = plan.args(p, scratch.data(), t0, plan.end(tg), bounds[rg], bounds[rg + 1]);
            plan.ops.transpose_in(p.x + a.t0 * k, k, a.w_valid, a.w_pad, scratch.data());
            plan.ops.rows(a);
        }
    });
}

const char* validate_pair(const SpmmProblem& first, const SpmmProblem& second) {
    if (first.out_features != second.in_features) return "the first layer's outputs must be the second's inputs";
    if (first.tokens != second.tokens) return "both layers must see the same tokens";
    return nullptr;
}

bool pair_fuses(const SpmmProblem& first, const SpmmProblem& second, Isa isa, int threads) {
    const bool q8_first = first.act_quant != kActQuantNone, q8_second = second.act_quant != kActQuantNone;
    if (q8_first != q8_second || first.tokens <= 0) return false;
    if (q8_first) return q8_pair_fuses(first, second, usable(isa), threads);
    return TilePlan(first, usable(isa), std::max(1, threads), first.in_features + first.out_features).row_groups == 1;
}

void spmm_pair(const SpmmProblem& first, const SpmmProblem& second, Isa isa, const Parallel& par) {
    if (first.tokens <= 0 || second.out_features <= 0) return;
    isa = usable(isa);
    const int threads = std::max(1, par.concurrency());
    if (!pair_fuses(first, second, isa, threads)) {
        // Too few token tiles to give every thread its own, or one FP32 and one INT8-compute layer: each
        // layer splits its rows between threads, which needs the whole intermediate between the two (exactly
        // the two separate nodes' work).
        std::vector<float> hidden(static_cast<size_t>(first.tokens * first.out_features));
        SpmmProblem a = first, b = second;
        a.y = hidden.data();
        b.x = hidden.data();
        spmm(a, isa, par);
        spmm(b, isa, par);
        return;
    }
    if (first.act_quant != kActQuantNone) return spmm_q8_pair(first, second, isa, par);
    const TilePlan plan(first, isa, threads, first.in_features + first.out_features);
    const int64_t k = first.in_features, h = first.out_features;
    par.run(plan.token_groups, [&](int64_t tg) {
        // This worker's tiles, each through both layers: xt (K x tile) in, ht (H x tile) between.
        ScratchLease scratch(static_cast<size_t>(std::max<int64_t>(1, (k + h) * plan.tile)));
        float* xt = scratch.data();
        float* ht = xt + k * plan.tile;
        for (int64_t t0 = plan.begin(tg); t0 < plan.end(tg); t0 += plan.tile) {
            const TileArgs a = plan.args(first, xt, t0, plan.end(tg), 0, h);
            plan.ops.transpose_in(first.x + a.t0 * k, k, a.w_valid, a.w_pad, xt);
            plan.ops.rows_to_tile(a, ht);
            plan.ops.rows(plan.args(second, ht, t0, plan.end(tg), 0, second.out_features));
        }
    });
}

}  // namespace pruneofa
