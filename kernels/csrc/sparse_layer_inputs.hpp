// Shared by SparseLinear, SparseLinearPair and SparseLinearSplit: how one sparse layer's constants sit among a node's inputs,
// their type/size checks, and the SpmmProblem built from them at evaluate().
//
// A layer's constants, from input `first`: row_ptr i32 [N / block_rows + 1], col_idx i32 [n_blocks], values
// f32 or i8 [n_blocks * block * block_rows], then scales f32 [N] only when the values are i8, then bias f32 [N] only with has_bias,
// then input_scale f32 [K] only with the compute attribute input_scale (static INT8 compute).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <openvino/core/attribute_visitor.hpp>
#include <openvino/core/node.hpp>
#include <openvino/op/constant.hpp>
#include <openvino/runtime/tensor.hpp>

#include "layer_layout.hpp"
#include "spmm_types.hpp"

namespace pruneofa {

struct LayerAttrs {
    int64_t in_features = 0;
    int64_t out_features = 0;
    int64_t block = 1;
    bool has_bias = false;
    std::string activation = "none";
    LayerCompute compute = {};
};

// Visits LayerCompute under `prefix` + block_rows, activation_quant, activation_scale, activation_zero_point,
// input_scale.
void visit_compute(ov::AttributeVisitor& visitor, const std::string& prefix, LayerCompute& compute);

// Visits a one-layer op's attributes under their IR names: in_features, out_features, block, has_bias,
// activation (SparseLinear's, and SparseLinearSplit's for the stacked matrix).
void visit_layer(ov::AttributeVisitor& visitor, LayerAttrs& layer);
// A one-layer op's input checks: X, then exactly the layer's constants from input 1 (by its values type
// and has_bias), all checked by check_layer. `op` names the op in the messages.
void check_single_layer(const ov::Node* node, const LayerAttrs& layer, const char* op, bool full,
                        std::vector<int32_t>* row_sums = nullptr);
// Whether the values input (first + 2) is i8.
bool layer_int8(const ov::Node* node, size_t first);
// How many inputs the layer's constants take (3 to 6).
size_t layer_input_count(const ov::Node* node, size_t first, bool has_bias, bool input_scale);
// NODE_VALIDATION_CHECKs of the attributes (compute mode included) and the constants' types; every weight
// input must be a Constant. With `full`, also every constant's length and the structure (check_layout:
// O(N + n_blocks)), and then, for INT8 compute, each row's sum of the (now checked) INT8 values into
// `row_sums` (when not null; left empty otherwise; out_features sums, then the largest |value|); a node whose constants were already checked
// (CheckedConstants) passes false.
void check_layer(const ov::Node* node, size_t first, const LayerAttrs& layer, bool full,
                 std::vector<int32_t>* row_sums = nullptr);

// The constant inputs a node last passed check_layer's full check with. OpenVINO re-runs
// validate_and_infer_types on a fresh clone of the node at every inference with dynamic shapes (the CPU
// plugin's shape inference for ops it does not know); the clone's constants share the original's buffers,
// and clone_with_new_inputs carries this record over, so the O(nnz) check runs once per model, not per call.
// The record holds the checked constants alive, so an equal data pointer always means the same bytes.
// "invalid sparse layer in <op type> '<friendly name>': ", the start of every structural refusal (the last
// line of OpenVINO's error, which pruneofa shows alone).
std::string invalid_layer(const ov::Node* node);

// How many full checks (check_layer with `full`) ran in this process: tests use it to see that inferences
// with dynamic shapes do not repeat them.
int64_t full_layer_checks();

class CheckedConstants {
public:
    // Whether every input from 1 on is a Constant with the recorded buffer (data pointer, size, type).
    bool matches(const ov::Node* node) const;
    // Records the node's constant inputs (after a full check passed) and its layers' INT8 row sums (empty for
    // a layer without INT8 compute), which the full check computed from those constants.
    void record(const ov::Node* node, std::vector<int32_t> first_sums = {}, std::vector<int32_t> second_sums = {});
    // The record for a clone over `new_args`: this one where they share the recorded buffers, else empty.
    CheckedConstants carried_to(const ov::OutputVector& new_args) const;
    // Layer `layer`'s (0 or 1) recorded row sums for SpmmProblem::row_sums, nullptr when none.
    const int32_t* row_sums(int layer) const;
    // Its largest |INT8 value| for SpmmProblem::weight_abs_max (recorded after the sums), -1 when none.
    int32_t weight_abs_max(int layer) const;

private:
    std::vector<std::shared_ptr<const ov::op::v0::Constant>> m_constants;  // by input index; X's is null
    std::shared_ptr<const std::vector<int32_t>> m_row_sums[2];  // shared by the clones that carry the record
};
// The problem for this layer's constants (x, y and tokens left for the caller).
SpmmProblem layer_problem(const ov::TensorVector& inputs, size_t first, const LayerAttrs& layer);
int activation_code(const std::string& activation);

}  // namespace pruneofa
