#include "sparse_layer_inputs.hpp"

#include <openvino/core/except.hpp>
#include <openvino/core/node.hpp>

namespace pruneofa {

bool layer_int8(const ov::Node* node, size_t first) {
    return node->get_input_size() > first + 2 && node->get_input_element_type(first + 2) == ov::element::i8;
}

size_t layer_input_count(const ov::Node* node, size_t first, bool has_bias) {
    return 3 + (layer_int8(node, first) ? 1 : 0) + (has_bias ? 1 : 0);
}

int activation_code(const std::string& activation) {
    return activation == "gelu" ? kActivationGeluErf : kActivationNone;
}

namespace {

int act_quant_code(const std::string& mode) {
    return mode == "dynamic" ? kActQuantDynamic : mode == "static" ? kActQuantStatic : kActQuantNone;
}

// The attribute checks of the layout / compute mode; the values' type comes from input first + 2.
void check_compute(const ov::Node* node, size_t first, const LayerAttrs& layer) {
    const LayerCompute& c = layer.compute;
    NODE_VALIDATION_CHECK(node, c.block_rows == 1 || c.block_rows == 4, "block_rows must be 1 or 4, got ",
                          c.block_rows);
    NODE_VALIDATION_CHECK(node,
                          c.activation_quant == "none" || c.activation_quant == "dynamic" ||
                              c.activation_quant == "static",
                          "activation_quant must be \"none\", \"dynamic\" or \"static\", got ", c.activation_quant);
    if (c.block_rows == 4)
        NODE_VALIDATION_CHECK(node, layer.block == 1 && !layer_int8(node, first) && layer.out_features % 4 == 0 &&
                                        c.activation_quant == "none",
                              "4 x 1 blocks need block 1, f32 values, FP32 compute and out_features a multiple of 4");
    if (c.activation_quant != "none") {
        NODE_VALIDATION_CHECK(node, layer.block == 4 && layer_int8(node, first),
                              "INT8 compute needs i8 values in 1 x 4 blocks (block 4)");
        NODE_VALIDATION_CHECK(node, layer.in_features <= 65536, "INT8 compute takes at most 65536 inputs");
    }
    if (c.activation_quant == "static")
        NODE_VALIDATION_CHECK(node,
                              c.activation_scale > 0.0f && c.activation_scale < 3.0e38f &&
                                  c.activation_zero_point >= 0 && c.activation_zero_point <= 255,
                              "static activation quantization needs a finite activation_scale > 0 and an "
                              "activation_zero_point in 0..255, got ",
                              c.activation_scale, " and ", c.activation_zero_point);
}

}  // namespace

void visit_compute(ov::AttributeVisitor& visitor, const std::string& prefix, LayerCompute& compute) {
    visitor.on_attribute(prefix + "block_rows", compute.block_rows);
    visitor.on_attribute(prefix + "activation_quant", compute.activation_quant);
    visitor.on_attribute(prefix + "activation_scale", compute.activation_scale);
    visitor.on_attribute(prefix + "activation_zero_point", compute.activation_zero_point);
}

void check_layer(const ov::Node* node, size_t first, const LayerAttrs& layer) {
    NODE_VALIDATION_CHECK(node, layer.block == 1 || layer.block == 2 || layer.block == 4 || layer.block == 8,
                          "block must be 1, 2, 4 or 8, got ", layer.block);
    NODE_VALIDATION_CHECK(node, layer.in_features >= 0 && layer.out_features >= 0, "negative feature count");
    NODE_VALIDATION_CHECK(node, layer.activation == "none" || layer.activation == "gelu",
                          "activation must be \"none\" or \"gelu\", got ", layer.activation);
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= first + 3, "a sparse layer needs row_ptr, col_idx and values");
    const size_t count = layer_input_count(node, first, layer.has_bias);
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= first + count, "a sparse layer expects ", count,
                          " constant inputs for its values type and has_bias");
    NODE_VALIDATION_CHECK(node, node->get_input_element_type(first) == ov::element::i32, "row_ptr must be i32");
    NODE_VALIDATION_CHECK(node, node->get_input_element_type(first + 1) == ov::element::i32, "col_idx must be i32");
    NODE_VALIDATION_CHECK(node,
                          node->get_input_element_type(first + 2) == ov::element::f32 || layer_int8(node, first),
                          "values must be f32 or i8");
    for (size_t i = first + 3; i < first + count; ++i)
        NODE_VALIDATION_CHECK(node, node->get_input_element_type(i) == ov::element::f32, "scales and bias must be f32");
    check_compute(node, first, layer);
    const size_t groups = size_t(layer.out_features / layer.compute.block_rows);
    const size_t per_block = size_t(layer.block * layer.compute.block_rows);
    // Sizes only: OpenVINO calls validation on every inference with dynamic shapes, so the O(nnz)
    // structure check runs once per node, in the first evaluate().
    if (node->get_input_partial_shape(first).is_static())
        NODE_VALIDATION_CHECK(node, ov::shape_size(node->get_input_shape(first)) == groups + 1,
                              "row_ptr must hold out_features / block_rows + 1 entries");
    if (node->get_input_partial_shape(first + 1).is_static() && node->get_input_partial_shape(first + 2).is_static())
        NODE_VALIDATION_CHECK(node,
                              ov::shape_size(node->get_input_shape(first + 2)) ==
                                  ov::shape_size(node->get_input_shape(first + 1)) * per_block,
                              "values must hold block x block_rows entries per col_idx entry");
}

void visit_layer(ov::AttributeVisitor& visitor, LayerAttrs& layer) {
    visitor.on_attribute("in_features", layer.in_features);
    visitor.on_attribute("out_features", layer.out_features);
    visitor.on_attribute("block", layer.block);
    visitor.on_attribute("has_bias", layer.has_bias);
    visitor.on_attribute("activation", layer.activation);
    visit_compute(visitor, "", layer.compute);
}

void check_single_layer(const ov::Node* node, const LayerAttrs& layer, const char* op) {
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= 4, op, " needs X, row_ptr, col_idx and values");
    check_layer(node, 1, layer);
    const size_t expected = 1 + layer_input_count(node, 1, layer.has_bias);
    NODE_VALIDATION_CHECK(node, node->get_input_size() == expected, op, " expects ", expected,
                          " inputs for its values type and has_bias, got ", node->get_input_size());
}

SpmmProblem layer_problem(const ov::TensorVector& inputs, size_t first, const LayerAttrs& layer) {
    const bool int8 = inputs[first + 2].get_element_type() == ov::element::i8;
    const size_t n_blocks = inputs[first + 1].get_size();
    OPENVINO_ASSERT(layer.compute.block_rows == 1 || layer.compute.block_rows == 4, "sparse layer: block_rows");
    const int64_t groups = layer.out_features / layer.compute.block_rows;
    OPENVINO_ASSERT(inputs[first].get_size() == size_t(groups + 1) &&
                        inputs[first + 2].get_size() == n_blocks * size_t(layer.block * layer.compute.block_rows),
                    "sparse layer: inputs do not match out_features / block / block_rows");
    SpmmProblem p;
    p.in_features = layer.in_features;
    p.out_features = layer.out_features;
    p.row_ptr = inputs[first].data<const int32_t>();
    p.col_idx = inputs[first + 1].data<const int32_t>();
    OPENVINO_ASSERT(p.row_ptr[groups] == static_cast<int32_t>(n_blocks), "sparse layer: row_ptr end");
    p.int8 = int8;
    if (int8) {
        p.values_i8 = inputs[first + 2].data<const int8_t>();
        p.scales = inputs[first + 3].data<const float>();
    } else {
        p.values_f32 = inputs[first + 2].data<const float>();
    }
    p.bias = layer.has_bias ? inputs[first + 3 + (int8 ? 1 : 0)].data<const float>() : nullptr;
    p.block = static_cast<int>(layer.block);
    p.activation = activation_code(layer.activation);
    p.block_rows = static_cast<int>(layer.compute.block_rows);
    p.act_quant = act_quant_code(layer.compute.activation_quant);
    p.act_scale = layer.compute.activation_scale;
    p.act_zero_point = static_cast<int32_t>(layer.compute.activation_zero_point);
    return p;
}

}  // namespace pruneofa
