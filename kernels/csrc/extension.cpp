// Library entry points: the OpenVINO extension (so core.add_extension(path) and IR reading know
// SparseLinear, SparseLinearPair and SparseLinearSplit) and a small C API for Python (ctypes): ISA report/override and a direct kernel call used
// by tests and benchmarks without building an OpenVINO model.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
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

__attribute__((visibility("default"))) void pruneofa_kernels_set_tile(int tokens) { pruneofa::set_tile_tokens(tokens); }

// Y = act(X · Wᵀ (+ bias)) (activation 0: none, 1: GELU erf) with the active path on `threads` TBB threads (0: all). Returns 0, or -1 with a
// structure error (nothing computed).
__attribute__((visibility("default"))) int pruneofa_kernels_spmm(const float* x, float* y, int64_t tokens,
                                                                 int64_t in_features, int64_t out_features,
                                                                 const int32_t* row_ptr, const int32_t* col_idx,
                                                                 int64_t n_blocks, const void* values, int int8,
                                                                 const float* scales, const float* bias, int block,
                                                                 int activation, int threads) {
    pruneofa::SpmmProblem p;
    p.x = x;
    p.y = y;
    p.tokens = tokens;
    p.in_features = in_features;
    p.out_features = out_features;
    p.row_ptr = row_ptr;
    p.col_idx = col_idx;
    p.int8 = int8 != 0;
    p.values_f32 = int8 ? nullptr : static_cast<const float*>(values);
    p.values_i8 = int8 ? static_cast<const int8_t*>(values) : nullptr;
    p.scales = scales;
    p.bias = bias;
    p.block = block;
    p.activation = activation;
    if (pruneofa::validate(p, n_blocks) != nullptr) return -1;
    if (threads > 0) {
        tbb::task_arena arena(threads);
        arena.execute([&] { pruneofa::spmm(p, pruneofa::active_isa(), pruneofa::ArenaParallel()); });
    } else {
        pruneofa::spmm(p, pruneofa::active_isa(), pruneofa::ArenaParallel());
    }
    return 0;
}

// One layer of a pair, as the Python side passes it (ctypes structure of the same layout).
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
    int32_t activation;
};

// Y = second(first(X)) through spmm_pair (X [tokens, in_features], Y [tokens, second.out_features]).
// Returns 0, or -1 with a structure error (nothing computed). `fused` (when not null) says whether the
// intermediate stayed in per-thread tiles.
__attribute__((visibility("default"))) int pruneofa_kernels_spmm_pair(const float* x, float* y, int64_t tokens,
                                                                      int64_t in_features,
                                                                      const pruneofa_layer* first,
                                                                      const pruneofa_layer* second, int threads,
                                                                      int* fused) {
    auto problem = [&](const pruneofa_layer& l) {
        pruneofa::SpmmProblem p;
        p.tokens = tokens;
        p.in_features = l.in_features;
        p.out_features = l.out_features;
        p.row_ptr = l.row_ptr;
        p.col_idx = l.col_idx;
        p.int8 = l.int8 != 0;
        p.values_f32 = l.int8 ? nullptr : static_cast<const float*>(l.values);
        p.values_i8 = l.int8 ? static_cast<const int8_t*>(l.values) : nullptr;
        p.scales = l.scales;
        p.bias = l.bias;
        p.block = l.block;
        p.activation = l.activation;
        return p;
    };
    if (first->in_features != in_features) return -1;
    pruneofa::SpmmProblem a = problem(*first), b = problem(*second);
    a.x = x;
    b.y = y;
    if (pruneofa::validate(a, first->n_blocks) != nullptr || pruneofa::validate(b, second->n_blocks) != nullptr ||
        pruneofa::validate_pair(a, b) != nullptr)
        return -1;
    auto run = [&] {
        if (fused != nullptr)
            *fused = pruneofa::pair_fuses(a, pruneofa::active_isa(), pruneofa::ArenaParallel().concurrency()) ? 1 : 0;
        pruneofa::spmm_pair(a, b, pruneofa::active_isa(), pruneofa::ArenaParallel());
    };
    if (threads > 0) {
        tbb::task_arena arena(threads);
        arena.execute(run);
    } else {
        run();
    }
    return 0;
}

}  // extern "C"
