// Whether one sparse layer's constants can be computed without reading out of bounds: every length
// against the attributes, row_ptr's structure, every column index. No OpenVINO here, so the sanitizer
// driver (test_spmm.cpp) checks the same function the ops run when a model is read.
//
// Why it matters: OpenVINO Model Server loads these IRs with --cpu_extension, so an IR is untrusted input
// and the kernel indexes X, values, scales and bias through these constants without further checks.
#pragma once

#include <cstdint>
#include <string>

#include "spmm_types.hpp"

namespace pruneofa {

// Bounds on the attributes: large enough for any transformer layer, small enough that no product the
// kernel forms (K x tile floats, N + 1 offsets, n_blocks x block values) overflows int64 or size_t.
constexpr int64_t kMaxFeatures = int64_t(1) << 24;
constexpr int64_t kMaxParts = 16;
// INT8 compute sums at most this many u8 x s8 products per output in int32.
constexpr int64_t kMaxInt8Features = 65536;

// The layout and compute mode beyond the block-CSR basics (IR attributes with these defaults may be absent):
// block_rows 4 = 4 x 1 FP32 blocks; activation_quant "dynamic" / "static" = INT8 compute on INT8 1 x 4
// blocks with per-token activation ranges or the calibrated u8 activation_scale / activation_zero_point
// (spmm_types.hpp); input_scale = one more f32 [K] input after the bias: factors applied to X before the
// static quantization (SpmmProblem::act_multiplier).
struct LayerCompute {
    int64_t block_rows = 1;
    std::string activation_quant = "none";
    float activation_scale = 0.0f;
    int64_t activation_zero_point = 0;
    bool input_scale = false;
};

// activation_quant's IR name as kActQuant*, -1 when unknown.
int act_quant_code(const std::string& mode);

// One layer's constants as the op sees them; a length of -1 means the input is absent.
struct LayerLayout {
    int64_t in_features = 0;   // K
    int64_t out_features = 0;  // N
    int64_t block = 1;
    bool has_bias = false;
    bool int8 = false;  // i8 values, then scales are required
    LayerCompute compute = {};
    const int32_t* row_ptr = nullptr;
    int64_t row_ptr_size = -1;
    const int32_t* col_idx = nullptr;
    int64_t col_idx_size = -1;
    int64_t values_size = -1;
    int64_t scales_size = -1;
    int64_t bias_size = -1;
    const float* input_scale = nullptr;  // compute.input_scale's factors
    int64_t input_scale_size = -1;
};

// The attributes alone: features in [1, kMaxFeatures], block 1, 2, 4 or 8. Empty when sound, else one
// sentence naming the first problem.
std::string check_attributes(int64_t in_features, int64_t out_features, int64_t block);

// The compute mode against the layout (OpenVINO-free, also run by spmm's validate): block_rows 1 or 4;
// act_quant a kActQuant* code; 4 x 1 blocks need block 1, f32 values, FP32 compute and N a multiple of 4;
// INT8 compute needs i8 values in 1 x 4 blocks and K <= kMaxInt8Features; static quantization a finite
// act_scale > 0 and act_zero_point in 0..255. nullptr when sound, else a fixed sentence.
const char* check_compute(int64_t in_features, int64_t out_features, int64_t block, bool int8, int64_t block_rows,
                          int act_quant, float act_scale, int64_t act_zero_point);

// Everything: the attributes and compute mode, each constant's length (row_ptr N / block_rows + 1, values
// n_blocks x block x block_rows, scales and bias N, input_scale K: only with static INT8 compute, every
// factor finite), then the structure (check_structure). Empty when sound, else one sentence.
std::string check_layout(const LayerLayout& layout);

// row_ptr [groups + 1] (groups: N / block_rows) starts at 0, never decreases and ends at n_blocks; every
// col_idx is >= 0 and col_idx + block <= K, or with `quads` (INT8 compute's 1 x 4 blocks, zero-padded past
// K) a multiple of 4 below K. O(groups + n_blocks). nullptr when sound, else a fixed message, and `*at`
// (when not null) the offending row group or block index.
const char* check_structure(const int32_t* row_ptr, int64_t groups, const int32_t* col_idx, int64_t n_blocks,
                            int64_t in_features, int64_t block, int64_t* at = nullptr, bool quads = false);

// A split output: parts in [1, kMaxParts], dividing out_features into parts of a multiple of 16 rows (the
// kernel's store unit never straddles two outputs).
std::string check_split(int64_t out_features, int64_t parts);
// A split output in the heads' layout: head_dim 0 (token-major) or a divisor of part_rows.
std::string check_heads(int64_t part_rows, int64_t head_dim);

}  // namespace pruneofa
