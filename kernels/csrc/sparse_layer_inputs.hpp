// Shared by SparseLinear and SparseLinearPair: how one sparse layer's constants sit among a node's inputs,
// their type/size checks, and the SpmmProblem built from them at evaluate().
//
// A layer's constants, from input `first`: row_ptr i32 [N + 1], col_idx i32 [n_blocks], values f32 or i8
// [n_blocks * block], then scales f32 [N] only when the values are i8, then bias f32 [N] only with has_bias.
#pragma once

#include <string>

#include <openvino/core/node.hpp>
#include <openvino/runtime/tensor.hpp>

#include "spmm_types.hpp"

namespace pruneofa {

struct LayerAttrs {
    int64_t in_features = 0;
    int64_t out_features = 0;
    int64_t block = 1;
    bool has_bias = false;
    std::string activation = "none";
};

// Whether the values input (first + 2) is i8.
bool layer_int8(const ov::Node* node, size_t first);
// How many inputs the layer's constants take (3, 4 or 5).
size_t layer_input_count(const ov::Node* node, size_t first, bool has_bias);
// NODE_VALIDATION_CHECKs of the attributes, the constants' types and (when static) sizes.
void check_layer(const ov::Node* node, size_t first, const LayerAttrs& layer);
// The problem for this layer's constants (x, y and tokens left for the caller).
SpmmProblem layer_problem(const ov::TensorVector& inputs, size_t first, const LayerAttrs& layer, bool has_bias_input);
int activation_code(const std::string& activation);

}  // namespace pruneofa
