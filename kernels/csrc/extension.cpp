// Library entry points: the OpenVINO extension (so core.add_extension(path) and IR reading know
// SparseLinear, SparseLinearPair and SparseLinearSplit) and a small C API for Python (ctypes): ISA report/override and a direct kernel call used
// by tests and benchmarks without building an OpenVINO model.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include "sparse_layer_inputs.hpp"
#include "sparse_linear.hpp"
#include "spmm.hpp"
#include "tbb_parallel.hpp"

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<pruneofa::SparseLinear>>(),
    std::make_shared<ov::OpExtension<pruneofa::SparseLinearPair>>(),
    std::make_shared<ov::OpExtension<pruneofa::SparseLinearSplit>>(),
}));

extern "C" {

__attribute__((visibility("default"))) const char* pruneofa_kernels_isa() {
    return pruneofa::isa_name(pruneofa::active_isa());
}

// 1 when this CPU runs `name` (and it is compiled in), else 0.
__attribute__((visibility("default"))) int pruneofa_kernels_isa_supported(const char* name) {
    pruneofa::Isa isa;
    return pruneofa::parse_isa(name, &isa) && pruneofa::isa_supported(isa) ? 1 : 0;
}

// Switches the path for every later call in this process; 0 when unknown or unsupported (unchanged).
__attribute__((visibility("default"))) int pruneofa_kernels_set_isa(const char* name) {
    pruneofa::Isa isa;
    return pruneofa::parse_isa(name, &isa) && pruneofa::set_active_isa(isa) ? 1 : 0;
}

// How many times a sparse layer's constants were checked in full (lengths and structure) at load.
__attribute__((visibility("default"))) int64_t pruneofa_kernels_load_checks() { return pruneofa::full_layer_checks(); }

__attribute__((visibility("default"))) void pruneofa_kernels_set_tile(int tokens) { pruneofa::set_tile_tokens(tokens); }

// The tile-width override in force (PRUNEOFA_KERNELS_TILE or set_tile), 0 when none.
__attribute__((visibility("default"))) int pruneofa_kernels_tile_forced() { return pruneofa::tile_tokens_forced(); }

// The data-cache sizes read at load (bytes, 0 when unknown) and where they came from.
__attribute__((visibility("default"))) const char* pruneofa_kernels_cache_sizes(int64_t* l1d, int64_t* l2) {
    const pruneofa::CacheSizes& sizes = pruneofa::cache_sizes();
    *l1d = sizes.l1d;
    *l2 = sizes.l2;
    return sizes.source;
}

// The token-tile width for a layer whose tile holds `rows` floats per token, on ISA `isa`: with l2 >= 0
// for those cache sizes (the policy alone), with l2 < 0 as a call would now choose it. 0 for an unknown ISA.
__attribute__((visibility("default"))) int64_t pruneofa_kernels_tile_width(int64_t rows, const char* isa_name,
                                                                            int64_t l1d, int64_t l2) {
    pruneofa::Isa isa;
    if (!pruneofa::parse_isa(isa_name, &isa)) return 0;
    if (l2 < 0) return pruneofa::tile_width(rows, isa);
    const pruneofa::CacheSizes sizes{l1d, l2, "given"};
    return pruneofa::tile_width(rows, isa, &sizes);
}

// The same for an INT8-compute layer of `in_features` inputs on `isa`'s INT8 route (hidden = 0), or a fused
// INT8 pair in_features -> hidden -> out (tiles: the first layer's INT8 tile, the FP32 intermediate and its
// INT8 tile). 0 for an unknown ISA.
__attribute__((visibility("default"))) int64_t pruneofa_kernels_q8_tile_width(int64_t in_features, int64_t hidden,
                                                                               const char* isa_name, int64_t l1d,
                                                                               int64_t l2) {
    pruneofa::Isa isa;
    if (!pruneofa::parse_isa(isa_name, &isa)) return 0;
    if (l2 < 0) return pruneofa::q8_tile_width(in_features, hidden, isa);
    const pruneofa::CacheSizes sizes{l1d, l2, "given"};
    return pruneofa::q8_tile_width(in_features, hidden, isa, &sizes);
}

// The INT8-compute route the active path runs ("avx512vnni", "avxvnni", "avx2", "scalar") and its largest
// quantized activation (255, or 127 on "avx2", whose vpmaddubsw would saturate on 8-bit activations).
__attribute__((visibility("default"))) const char* pruneofa_kernels_int8_route() {
    return pruneofa::q8_route_name(pruneofa::active_isa());
}
__attribute__((visibility("default"))) int pruneofa_kernels_int8_levels() {
    return pruneofa::q8_levels(pruneofa::active_isa());
}

// One sparse layer as the Python side passes it (ctypes structure of the same layout, kernels/library.py).
struct pruneofa_layer {
    int64_t in_features;
    int64_t out_features;
    const int32_t* row_ptr;
    const int32_t* col_idx;
    int64_t n_blocks;
    const void* values;
    int32_t int8;
    int32_t block;
    const float* scales;
    const float* bias;
    int32_t activation;  // 0: none, 1: GELU (erf), after the bias
    int32_t block_rows;      // 1, or 4 for 4 x 1 FP32 blocks (row_ptr then per group of 4 rows)
    int32_t act_quant;       // 0: FP32 compute, 1: INT8 with per-token activation ranges, 2: INT8 static
    float act_scale;         // static: the u8 activation step
    int32_t act_zero_point;  // static: the u8 value of 0.0
    const float* act_multiplier;  // static only: [in_features] factors applied to X before quantization, or null
};

}  // extern "C"

namespace {

// The problem for one layer over `tokens` rows (x and y left for the caller); false with a structure error.
bool layer_problem(const pruneofa_layer& l, int64_t tokens, pruneofa::SpmmProblem* p) {
    p->tokens = tokens;
    p->in_features = l.in_features;
    p->out_features = l.out_features;
    p->row_ptr = l.row_ptr;
    p->col_idx = l.col_idx;
    p->int8 = l.int8 != 0;
    p->values_f32 = l.int8 ? nullptr : static_cast<const float*>(l.values);
    p->values_i8 = l.int8 ? static_cast<const int8_t*>(l.values) : nullptr;
    p->scales = l.scales;
    p->bias = l.bias;
    p->block = l.block;
    p->activation = l.activation;
    p->block_rows = l.block_rows;
    p->act_quant = l.act_quant;
    p->act_scale = l.act_scale;
    p->act_zero_point = l.act_zero_point;
    p->act_multiplier = l.act_multiplier;
    return pruneofa::validate(*p, l.n_blocks) == nullptr;
}

// Runs `work` on `threads` TBB threads (0: the current arena, all of them).
template <typename Work>
void run_on(int threads, const Work& work) {
    if (threads > 0) {
        tbb::task_arena arena(threads);
        arena.execute(work);
    } else {
        work();
    }
}

}  // namespace

extern "C" {

// Y = act(X · Wᵀ (+ bias)) for X [tokens, layer.in_features], with the active path on `threads` TBB threads
// (0: all). Returns 0, or -1 with a structure error (nothing computed).
__attribute__((visibility("default"))) int pruneofa_kernels_spmm(const float* x, float* y, int64_t tokens,
                                                                 const pruneofa_layer* layer, int threads) {
    pruneofa::SpmmProblem p;
    if (!layer_problem(*layer, tokens, &p)) return -1;
    p.x = x;
    p.y = y;
    run_on(threads, [&] { pruneofa::spmm(p, pruneofa::active_isa(), pruneofa::ArenaParallel()); });
    return 0;
}

// Y = second(first(X)) through spmm_pair (X [tokens, first.in_features], Y [tokens, second.out_features]).
// Returns 0, or -1 with a structure error or layers that do not chain (nothing computed). `fused` (when
// not null) says whether the intermediate stayed in per-thread tiles.
__attribute__((visibility("default"))) int pruneofa_kernels_spmm_pair(const float* x, float* y, int64_t tokens,
                                                                      const pruneofa_layer* first,
                                                                      const pruneofa_layer* second, int threads,
                                                                      int* fused) {
    pruneofa::SpmmProblem a, b;
    if (!layer_problem(*first, tokens, &a) || !layer_problem(*second, tokens, &b)) return -1;
    if (pruneofa::validate_pair(a, b) != nullptr) return -1;
    a.x = x;
    b.y = y;
    run_on(threads, [&] {
        if (fused != nullptr)
            *fused = pruneofa::pair_fuses(a, b, pruneofa::active_isa(), pruneofa::ArenaParallel().concurrency()) ? 1 : 0;
        pruneofa::spmm_pair(a, b, pruneofa::active_isa(), pruneofa::ArenaParallel());
    });
    return 0;
}

}  // extern "C"
