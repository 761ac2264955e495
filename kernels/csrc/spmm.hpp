// Sparse weights × dense activations: the compute core of the SparseLinear operation.
//
// Y[t, n] = act(scale[n] * sum_k W[n, k] * X[t, k] + bias[n]) with W stored as a block-CSR matrix of
// 1 x `block` blocks along the input dimension (block = 1 is plain CSR). This header has no OpenVINO or
// TBB dependency, so a standalone test driver (and its sanitizer build) can use it; threading comes in
// through the small `Parallel` interface.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu_cache.hpp"
#include "spmm_types.hpp"

namespace pruneofa {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// Runs `body(i)` for i in [0, n), possibly concurrently; `concurrency()` tells how many workers exist.
class Parallel {
public:
    virtual ~Parallel() = default;
    virtual int concurrency() const = 0;
    virtual void run(int64_t n, const std::function<void(int64_t)>& body) const = 0;
};

// Runs everything on the calling thread, reporting `workers` so that partitioning is still exercised.
class SerialParallel final : public Parallel {
public:
    explicit SerialParallel(int workers = 1) : workers_(workers) {}
    int concurrency() const override { return workers_; }
    void run(int64_t n, const std::function<void(int64_t)>& body) const override {
        for (int64_t i = 0; i < n; ++i) body(i);
    }

private:
    int workers_;
};

// Checks the problem's structure (row_ptr monotonic, columns in range); returns an error or nullptr.
const char* validate(const SpmmProblem& p, int64_t n_blocks);

// Computes the product with one ISA path (which must be supported by this CPU: see `isa_supported`).
void spmm(const SpmmProblem& p, Isa isa, const Parallel& par);

// Two layers in a row, Y = second(first(X)) (each with its own format, bias and activation), without
// storing the intermediate when every thread can take whole token tiles through both layers; otherwise
// the two products one after the other. `first.y` and `second.x` are ignored. See `validate_pair`.
void spmm_pair(const SpmmProblem& first, const SpmmProblem& second, Isa isa, const Parallel& par);
const char* validate_pair(const SpmmProblem& first, const SpmmProblem& second);
// Whether spmm_pair keeps the intermediate in per-thread tiles for this problem and thread count: both
// layers FP32 compute or both INT8 compute, and every thread gets its own token range.
bool pair_fuses(const SpmmProblem& first, const SpmmProblem& second, Isa isa, int threads);

// The path chosen at load (best supported, or PRUNEOFA_KERNELS_ISA when set and supported).
Isa active_isa();
bool set_active_isa(Isa isa);  // false (and unchanged) when the CPU lacks it
bool isa_supported(Isa isa);
bool isa_compiled(Isa isa);
const char* isa_name(Isa isa);
bool parse_isa(const char* name, Isa* out);

// INT8 compute (spmm_int8_dispatch.cpp): spmm() hands it to spmm_q8, and spmm_pair a pair of INT8-compute
// layers to spmm_q8_pair when q8_pair_fuses (a pair with one INT8 and one FP32 layer runs them one after
// the other). validate() checks every format and compute mode with layer_layout.hpp's rules
// (check_compute, check_structure), as the ops do at load.
void spmm_q8(const SpmmProblem& p, Isa isa, const Parallel& par);
// Per thread and token tile: x quantized, the first layer's outputs (bias, activation) into a transposed
// FP32 tile, that tile quantized per token (or with the second layer's static step) into the INT8 layout,
// the second layer: the same bits as two spmm_q8 calls, the intermediate never stored token-major.
void spmm_q8_pair(const SpmmProblem& first, const SpmmProblem& second, Isa isa, const Parallel& par);
// Both layers on one INT8 route and each thread its own tokens.
bool q8_pair_fuses(const SpmmProblem& first, const SpmmProblem& second, Isa isa, int threads);
// Each row's sum of INT8 values ([out_features]) for SpmmProblem::row_sums (1 x 4 INT8 blocks).
void row_sums_of(const SpmmProblem& p, int32_t* out);
// The INT8 instruction route an ISA level runs ("avx512vnni", "avxvnni", "avx2", "scalar") and its
// largest quantized activation (255, or 127 on "avx2").
const char* q8_route_name(Isa isa);
int q8_levels(Isa isa);
// The largest quantized activation for this layer: q8_levels, except 255 on "avx2" where its weights stay
// within [-64, 64] (kWeightAbsMax7Bit; SpmmProblem::weight_abs_max, computed when not recorded).
int q8_levels_for(const SpmmProblem& p, Isa isa);
constexpr int32_t kWeightAbsMax7Bit = 64;

// How `threads` workers share a call of `units` lane groups of tokens: `token_groups` contiguous token
// ranges (group g: lane groups [units * g / token_groups, units * (g + 1) / token_groups)) times
// `row_groups` ranges of output rows, token_groups * row_groups == threads.
void split_work(int64_t units, int threads, int64_t* token_groups, int64_t* row_groups);

// How one call's tokens are cut for `threads` workers (split_work): token group g covers
// [begin(g), end(g)), cut at multiples of the lanes as evenly as that allows, in tiles of `tile` tokens
// from begin(g) (its last one narrower), times `row_groups` ranges of output rows. Shared by the FP32 and
// INT8-compute paths.
struct TokenPlan {
    int lanes;
    int64_t tokens;
    int64_t tile;
    int64_t units;  // lane groups of tokens
    int64_t token_groups = 1;
    int64_t row_groups = 1;

    TokenPlan(int64_t tokens, int lanes, int64_t tile, int threads);
    int64_t begin(int64_t g) const;
    int64_t end(int64_t g) const { return begin(g + 1); }

    // The tile of `p` starting at token t0 (its range ends at `range_end`) over output rows
    // [row_begin, row_end), its transposed FP32 activations in `xt` (null on the INT8 path, whose tile
    // goes beside it as a Q8Tile).
    TileArgs args(const SpmmProblem& p, const float* xt, int64_t t0, int64_t range_end, int64_t row_begin,
                  int64_t row_end) const {
        TileArgs a{};
        a.p = &p;
        a.xt = xt;
        a.t0 = t0;
        a.w_valid = std::min(tile, range_end - t0);
        a.w_pad = (a.w_valid + lanes - 1) / lanes * lanes;
        a.row_begin = row_begin;
        a.row_end = row_end;
        return a;
    }
};

// Output rows cut (in groups of 16, the store unit) into at most `chunks` ranges of about equal work (stored
// values plus a per-row cost for the epilogue): bounds[0] = 0 < ... < bounds[back] = out_features.
std::vector<int64_t> partition_rows(const SpmmProblem& p, int64_t chunks);

// Token-tile width override for tuning (0 = automatic); PRUNEOFA_KERNELS_TILE sets it at load.
void set_tile_tokens(int tokens);
int tile_tokens_forced();  // the override in force (0: none)

// The tile width (tokens) for a tile of `bytes_per_token` on a path of `lanes` lanes: the widest of 64 / 32
// / 16 tokens, at most 4 vectors, filling at most half of L2 (docs/kernels.md, "Tile width from the
// caches"). From `cache` when given (the policy alone, ignoring the override), else as a call would now
// (the override rounded to the lanes, or the caches read at load).
int64_t tile_width_for(int64_t bytes_per_token, int lanes, const CacheSizes* cache = nullptr);
// The FP32 paths: a tile of `rows` floats per token (K; K + H for a fused pair) on `isa`.
int64_t tile_width(int64_t rows, Isa isa, const CacheSizes* cache = nullptr);
// INT8 compute on `isa`'s route (its lanes): a layer of K = `in_features` (hidden = 0), or a fused pair
// K -> hidden -> N whose tiles are the first layer's INT8 tile, the FP32 intermediate and its INT8 tile.
int64_t q8_tile_width(int64_t in_features, int64_t hidden, Isa isa, const CacheSizes* cache = nullptr);
// Bytes per token of an INT8-compute tile of K inputs: its quads (ceil(K / 4) 32-bit lanes) plus the token's
// step and zero point.
inline int64_t q8_tile_bytes(int64_t k) { return 4 * ((k + 3) / 4) + 8; }

}  // namespace pruneofa
