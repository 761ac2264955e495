#include "sparse_layer_inputs.hpp"

#include <algorithm>

#include <atomic>

#include <openvino/core/except.hpp>
#include <openvino/core/node.hpp>

#include "layer_layout.hpp"
#include "spmm.hpp"

namespace pruneofa {

bool layer_int8(const ov::Node* node, size_t first) {
    return node->get_input_size() > first + 2 && node->get_input_element_type(first + 2) == ov::element::i8;
}

size_t layer_input_count(const ov::Node* node, size_t first, bool has_bias, bool input_scale) {
    return 3 + (layer_int8(node, first) ? 1 : 0) + (has_bias ? 1 : 0) + (input_scale ? 1 : 0);
}

int activation_code(const std::string& activation) {
    return activation == "gelu" ? kActivationGeluErf : kActivationNone;
}

namespace {

std::atomic<int64_t> g_full_checks{0};

const ov::op::v0::Constant* constant_input(const ov::Node* node, size_t i) {
    return ov::as_type<const ov::op::v0::Constant>(node->get_input_node_ptr(i));
}

}  // namespace

std::string invalid_layer(const ov::Node* node) {
    return std::string("invalid sparse layer in ") + node->get_type_name() + " '" + node->get_friendly_name() + "': ";
}

namespace {

bool same_buffer(const ov::op::v0::Constant* a, const ov::op::v0::Constant* b) {
    return a != nullptr && b != nullptr && a->get_data_ptr() == b->get_data_ptr() &&
           a->get_byte_size() == b->get_byte_size() && a->get_element_type() == b->get_element_type() &&
           a->get_shape() == b->get_shape();
}

}  // namespace

void visit_compute(ov::AttributeVisitor& visitor, const std::string& prefix, LayerCompute& compute) {
    visitor.on_attribute(prefix + "block_rows", compute.block_rows);
    visitor.on_attribute(prefix + "activation_quant", compute.activation_quant);
    visitor.on_attribute(prefix + "activation_scale", compute.activation_scale);
    visitor.on_attribute(prefix + "activation_zero_point", compute.activation_zero_point);
    visitor.on_attribute(prefix + "input_scale", compute.input_scale);
}

void check_layer(const ov::Node* node, size_t first, const LayerAttrs& layer, bool full,
                 std::vector<int32_t>* row_sums) {
    if (row_sums != nullptr) row_sums->clear();
    const std::string attrs = check_attributes(layer.in_features, layer.out_features, layer.block);
    NODE_VALIDATION_CHECK(node, attrs.empty(), invalid_layer(node), attrs);
    NODE_VALIDATION_CHECK(node, layer.activation == "none" || layer.activation == "gelu",
                          invalid_layer(node), "activation must be \"none\" or \"gelu\", got ", layer.activation);
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= first + 3, "a sparse layer needs row_ptr, col_idx and values");
    const bool int8 = layer_int8(node, first);
    const size_t count = layer_input_count(node, first, layer.has_bias, layer.compute.input_scale);
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= first + count, "a sparse layer expects ", count,
                          " constant inputs for its values type, has_bias and input_scale");
    NODE_VALIDATION_CHECK(node, node->get_input_element_type(first) == ov::element::i32, "row_ptr must be i32");
    NODE_VALIDATION_CHECK(node, node->get_input_element_type(first + 1) == ov::element::i32, "col_idx must be i32");
    NODE_VALIDATION_CHECK(node, node->get_input_element_type(first + 2) == ov::element::f32 || int8,
                          "values must be f32 or i8");
    for (size_t i = first + 3; i < first + count; ++i)
        NODE_VALIDATION_CHECK(node, node->get_input_element_type(i) == ov::element::f32,
                              "scales, bias and input_scale must be f32");
    const LayerCompute& c = layer.compute;
    const int quant = act_quant_code(c.activation_quant);
    NODE_VALIDATION_CHECK(node, quant >= 0, invalid_layer(node),
                          "activation_quant must be \"none\", \"dynamic\" or \"static\", got \"", c.activation_quant, "\"");
    const char* compute_err = check_compute(layer.in_features, layer.out_features, layer.block, int8, c.block_rows,
                                            quant, c.activation_scale, c.activation_zero_point);
    NODE_VALIDATION_CHECK(node, compute_err == nullptr, invalid_layer(node), compute_err, ", got block_rows ",
                          c.block_rows, ", block ", layer.block, ", out_features ", layer.out_features, ", scale ",
                          c.activation_scale, ", zero point ", c.activation_zero_point);
    const char* names[6] = {"row_ptr", "col_idx", "values"};
    size_t named = 3;
    if (int8) names[named++] = "scales";
    if (layer.has_bias) names[named++] = "bias";
    if (layer.compute.input_scale) names[named++] = "input_scale";
    const ov::op::v0::Constant* constants[6] = {};
    for (size_t i = 0; i < count; ++i) {
        constants[i] = constant_input(node, first + i);
        NODE_VALIDATION_CHECK(node, constants[i] != nullptr, invalid_layer(node), "its ", names[i], " (input ",
                              first + i, ") must be a Constant: the weights are checked when the model is read");
    }
    if (!full) return;
    g_full_checks.fetch_add(1, std::memory_order_relaxed);
    auto size = [&](size_t i) { return static_cast<int64_t>(ov::shape_size(constants[i]->get_shape())); };
    LayerLayout l;
    l.in_features = layer.in_features;
    l.out_features = layer.out_features;
    l.block = layer.block;
    l.has_bias = layer.has_bias;
    l.int8 = int8;
    l.compute = c;
    l.row_ptr = static_cast<const int32_t*>(constants[0]->get_data_ptr());
    l.row_ptr_size = size(0);
    l.col_idx = static_cast<const int32_t*>(constants[1]->get_data_ptr());
    l.col_idx_size = size(1);
    l.values_size = size(2);
    if (int8) l.scales_size = size(3);
    const size_t bias_at = 3 + (int8 ? 1 : 0);
    if (layer.has_bias) l.bias_size = size(bias_at);
    if (layer.compute.input_scale) {
        const size_t at = bias_at + (layer.has_bias ? 1 : 0);
        l.input_scale = static_cast<const float*>(constants[at]->get_data_ptr());
        l.input_scale_size = size(at);
    }
    const std::string err = check_layout(l);
    NODE_VALIDATION_CHECK(node, err.empty(), invalid_layer(node), err);
    if (row_sums == nullptr || quant == kActQuantNone) return;
    // The zero-point term of INT8 compute, from the constants just checked (once per model: the record).
    SpmmProblem p;
    p.out_features = layer.out_features;
    p.row_ptr = l.row_ptr;
    p.values_i8 = static_cast<const int8_t*>(constants[2]->get_data_ptr());
    row_sums->resize(static_cast<size_t>(layer.out_features) + 1);
    row_sums_of(p, row_sums->data());
    // One entry past the sums: the largest |value| (SpmmProblem::weight_abs_max, the avx2 route's choice).
    int32_t most = 0;
    const int8_t* values = p.values_i8;
    for (int64_t i = 0; i < l.values_size; ++i) most = std::max(most, values[i] < 0 ? -int32_t(values[i]) : int32_t(values[i]));
    row_sums->back() = most;
}

int64_t full_layer_checks() { return g_full_checks.load(std::memory_order_relaxed); }

bool CheckedConstants::matches(const ov::Node* node) const {
    if (m_constants.size() != node->get_input_size()) return false;
    for (size_t i = 1; i < m_constants.size(); ++i)
        if (!same_buffer(constant_input(node, i), m_constants[i].get())) return false;
    return true;
}

void CheckedConstants::record(const ov::Node* node, std::vector<int32_t> first_sums,
                              std::vector<int32_t> second_sums) {
    m_constants.assign(node->get_input_size(), nullptr);
    for (size_t i = 1; i < m_constants.size(); ++i)
        m_constants[i] = ov::as_type_ptr<const ov::op::v0::Constant>(node->get_input_node_shared_ptr(i));
    std::vector<int32_t>* sums[2] = {&first_sums, &second_sums};
    for (int i = 0; i < 2; ++i)
        m_row_sums[i] = sums[i]->empty() ? nullptr : std::make_shared<const std::vector<int32_t>>(std::move(*sums[i]));
}

const int32_t* CheckedConstants::row_sums(int layer) const {
    const auto& sums = m_row_sums[layer == 0 ? 0 : 1];
    return sums != nullptr ? sums->data() : nullptr;
}

int32_t CheckedConstants::weight_abs_max(int layer) const {
    const auto& sums = m_row_sums[layer == 0 ? 0 : 1];
    return sums != nullptr && !sums->empty() ? sums->back() : -1;
}

CheckedConstants CheckedConstants::carried_to(const ov::OutputVector& new_args) const {
    if (m_constants.size() != new_args.size()) return {};
    for (size_t i = 1; i < new_args.size(); ++i)
        if (!same_buffer(ov::as_type<const ov::op::v0::Constant>(new_args[i].get_node()), m_constants[i].get()))
            return {};
    return *this;
}

void visit_layer(ov::AttributeVisitor& visitor, LayerAttrs& layer) {
    visitor.on_attribute("in_features", layer.in_features);
    visitor.on_attribute("out_features", layer.out_features);
    visitor.on_attribute("block", layer.block);
    visitor.on_attribute("has_bias", layer.has_bias);
    visitor.on_attribute("activation", layer.activation);
    visit_compute(visitor, "", layer.compute);
}

void check_single_layer(const ov::Node* node, const LayerAttrs& layer, const char* op, bool full,
                        std::vector<int32_t>* row_sums) {
    NODE_VALIDATION_CHECK(node, node->get_input_size() >= 4, op, " needs X, row_ptr, col_idx and values");
    check_layer(node, 1, layer, full, row_sums);
    const size_t expected = 1 + layer_input_count(node, 1, layer.has_bias, layer.compute.input_scale);
    NODE_VALIDATION_CHECK(node, node->get_input_size() == expected, op, " expects ", expected,
                          " inputs for its values type, has_bias and input_scale, got ", node->get_input_size());
}

SpmmProblem layer_problem(const ov::TensorVector& inputs, size_t first, const LayerAttrs& layer) {
    OPENVINO_ASSERT(inputs.size() >= first + 3, "sparse layer: row_ptr, col_idx and values missing");
    const bool int8 = inputs[first + 2].get_element_type() == ov::element::i8;
    const size_t bias_at = first + 3 + (int8 ? 1 : 0), scale_at = bias_at + (layer.has_bias ? 1 : 0);
    OPENVINO_ASSERT(inputs.size() >= scale_at + (layer.compute.input_scale ? 1 : 0),
                    "sparse layer: scales, bias or input_scale missing");
    const size_t n_blocks = inputs[first + 1].get_size();
    OPENVINO_ASSERT(layer.compute.block_rows == 1 || layer.compute.block_rows == 4, "sparse layer: block_rows");
    const int64_t groups = layer.out_features / layer.compute.block_rows;
    OPENVINO_ASSERT(inputs[first].get_size() == size_t(groups + 1) &&
                        inputs[first + 2].get_size() == n_blocks * size_t(layer.block * layer.compute.block_rows),
                    "sparse layer: inputs do not match out_features / block / block_rows");
    const size_t n = static_cast<size_t>(layer.out_features);
    OPENVINO_ASSERT((!int8 || inputs[first + 3].get_size() == n) &&
                        (!layer.has_bias || inputs[bias_at].get_size() == n),
                    "sparse layer: scales and bias must hold out_features entries");
    OPENVINO_ASSERT(!layer.compute.input_scale ||
                        inputs[scale_at].get_size() == static_cast<size_t>(layer.in_features),
                    "sparse layer: input_scale must hold in_features entries");
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
    p.bias = layer.has_bias ? inputs[bias_at].data<const float>() : nullptr;
    p.act_multiplier = layer.compute.input_scale ? inputs[scale_at].data<const float>() : nullptr;
    p.block = static_cast<int>(layer.block);
    p.activation = activation_code(layer.activation);
    p.block_rows = static_cast<int>(layer.compute.block_rows);
    p.act_quant = act_quant_code(layer.compute.activation_quant);
    p.act_scale = layer.compute.activation_scale;
    p.act_zero_point = static_cast<int32_t>(layer.compute.activation_zero_point);
    return p;
}

}  // namespace pruneofa
