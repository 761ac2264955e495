// Shared by SparseLinear, SparseLinearPair and SparseLinearSplit: how one sparse layer's constants sit among a node's inputs,
// their type/size checks, and the SpmmProblem built from them at evaluate().
//
// A layer's constants, from input `first`: row_ptr i32 [N + 1], col_idx i32 [n_blocks], values f32 or i8
// [n_blocks * block], then scales f32 [N] only when the values are i8, then bias f32 [N] only with has_bias.
#pragma once

#include <string>

#include <openvino/core/attribute_visitor.hpp>
#include <openvino/core/node.hpp>
#include <openvino/runtime/tensor.hpp>

#include "spmm_types.hpp"

namespace pruneofa {

// The layout and compute mode beyond the block-CSR basics (attributes with these defaults may be absent
// from an IR): block_rows 4 = 4 x 1 FP32 blocks; activation_quant "dynamic" / "static" = INT8 compute on
// INT8 1 x 4 blocks with per-token activation ranges or the calibrated u8 activation_scale /
// activation_zero_point (spmm_types.hpp).
struct LayerCompute {
    int64_t block_rows = 1;
    std::string activation_quant = "none";
    float activation_scale = 0.0f;
    int64_t activation_zero_point = 0;
};

struct LayerAttrs {
    int64_t in_features = 0;
    int64_t out_features = 0;
    int64_t block = 1;
    bool has_bias = false;
    std::string activation = "none";
    LayerCompute compute = {};
};

// Visits LayerCompute under `prefix` + block_rows, activation_quant, activation_scale, activation_zero_point.
void visit_compute(ov::AttributeVisitor& visitor, const std::string& prefix, LayerCompute& compute);

// Visits a one-layer op's attributes under their IR names: in_features, out_features, block, has_bias,
// activation (SparseLinear's, and SparseLinearSplit's for the stacked matrix).
void visit_layer(ov::AttributeVisitor& visitor, LayerAttrs& layer);
// A one-layer op's input checks: X, then exactly the layer's constants from input 1 (by its values type
// and has_bias), all checked by check_layer. `op` names the op in the messages.
void check_single_layer(const ov::Node* node, const LayerAttrs& layer, const char* op);
// Whether the values input (first + 2) is i8.
bool layer_int8(const ov::Node* node, size_t first);
// How many inputs the layer's constants take (3, 4 or 5).
size_t layer_input_count(const ov::Node* node, size_t first, bool has_bias);
// NODE_VALIDATION_CHECKs of the attributes, the constants' types and (when static) sizes.
void check_layer(const ov::Node* node, size_t first, const LayerAttrs& layer);
// The problem for this layer's constants (x, y and tokens left for the caller).
SpmmProblem layer_problem(const ov::TensorVector& inputs, size_t first, const LayerAttrs& layer);
int activation_code(const std::string& activation);

}  // namespace pruneofa
