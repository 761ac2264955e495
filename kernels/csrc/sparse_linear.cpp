#include "sparse_linear.hpp"

#include <mutex>

#include "layer_layout.hpp"
#include "sparse_layer_inputs.hpp"
#include "spmm.hpp"
#include "tbb_parallel.hpp"

namespace pruneofa {
namespace {

// Rows of X for a [..., K] -> [..., N] product (K = 0 keeps the count from the output shape).
int64_t token_count(const ov::Shape& x_shape, const ov::Shape& y_shape) {
    if (x_shape.back() > 0) return static_cast<int64_t>(ov::shape_size(x_shape) / x_shape.back());
    return static_cast<int64_t>(ov::shape_size(y_shape) / std::max<size_t>(1, y_shape.back()));
}

// Checks a layer's structure once per node (O(nnz); the constants never change).
void check_once(const ov::Node* node, std::atomic<bool>& checked, std::mutex& mutex, const SpmmProblem& p,
                size_t n_blocks) {
    if (checked.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (checked.load(std::memory_order_relaxed)) return;
    const char* err = validate(p, static_cast<int64_t>(n_blocks));
    OPENVINO_ASSERT(err == nullptr, node->get_type_name(), " ", node->get_friendly_name(),
                    ": invalid sparse weight: ", err);
    checked.store(true, std::memory_order_release);
}

// The output shape: X's with the last dimension replaced by `out_features`.
ov::PartialShape output_shape(const ov::Node* node, int64_t in_features, int64_t out_features) {
    const auto& x_shape = node->get_input_partial_shape(0);
    ov::PartialShape y_shape = x_shape;
    if (x_shape.rank().is_static()) {
        NODE_VALIDATION_CHECK(node, x_shape.rank().get_length() >= 1, "X must have rank >= 1");
        const auto& last = x_shape[x_shape.rank().get_length() - 1];
        NODE_VALIDATION_CHECK(node, last.compatible(in_features), "X's last dimension ", last,
                              " does not match in_features ", in_features);
        y_shape[y_shape.rank().get_length() - 1] = out_features;
    }
    return y_shape;
}

void check_x(const ov::Node* node) {
    const auto x_type = node->get_input_element_type(0);
    NODE_VALIDATION_CHECK(node, x_type.is_dynamic() || x_type == ov::element::f32, "X must be f32, got ", x_type);
}

ov::Shape evaluated_shape(const ov::Tensor& x, int64_t in_features, int64_t out_features) {
    const ov::Shape x_shape = x.get_shape();
    OPENVINO_ASSERT(!x_shape.empty() && x_shape.back() == size_t(in_features), "X shape ", x_shape,
                    " does not end in in_features ", in_features);
    ov::Shape y_shape = x_shape;
    y_shape.back() = static_cast<size_t>(out_features);
    return y_shape;
}

}  // namespace

// ---- SparseLinear -------------------------------------------------------------------------------------

SparseLinear::SparseLinear(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t block,
                           bool has_bias, std::string activation, LayerCompute compute)
    : Op(args), m_layer{in_features, out_features, block, has_bias, std::move(activation), std::move(compute)} {
    constructor_validate_and_infer_types();
}

void SparseLinear::validate_and_infer_types() {
    const bool known = m_load_checked.matches(this);
    std::vector<int32_t> sums;
    check_single_layer(this, m_layer, "SparseLinear", !known, &sums);
    if (!known) m_load_checked.record(this, std::move(sums));
    check_x(this);
    set_output_type(0, ov::element::f32, output_shape(this, m_layer.in_features, m_layer.out_features));
}

std::shared_ptr<ov::Node> SparseLinear::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    auto clone = std::make_shared<SparseLinear>();
    clone->m_layer = m_layer;
    clone->m_load_checked = m_load_checked.carried_to(new_args);
    clone->set_arguments(new_args);
    clone->constructor_validate_and_infer_types();
    return clone;
}

bool SparseLinear::visit_attributes(ov::AttributeVisitor& visitor) {
    visit_layer(visitor, m_layer);
    return true;
}

bool SparseLinear::has_evaluate() const { return true; }

bool SparseLinear::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    const ov::Tensor& x = inputs[0];
    const ov::Shape y_shape = evaluated_shape(x, m_layer.in_features, m_layer.out_features);
    outputs[0].set_shape(y_shape);
    SpmmProblem p = layer_problem(inputs, 1, m_layer);
    p.x = x.data<const float>();
    p.y = outputs[0].data<float>();
    p.tokens = token_count(x.get_shape(), y_shape);
    p.row_sums = m_load_checked.row_sums(0);
    p.weight_abs_max = m_load_checked.weight_abs_max(0);
    check_once(this, m_checked, m_check_mutex, p, inputs[2].get_size());
    spmm(p, active_isa(), ArenaParallel());
    return true;
}

// ---- SparseLinearPair ---------------------------------------------------------------------------------

SparseLinearPair::SparseLinearPair(const ov::OutputVector& args, int64_t in_features, int64_t hidden_features,
                                   int64_t out_features, int64_t first_block, bool first_has_bias,
                                   std::string first_activation, int64_t second_block, bool second_has_bias,
                                   std::string second_activation, std::string first_name, std::string second_name,
                                   LayerCompute first_compute, LayerCompute second_compute)
    : Op(args),
      m_in_features(in_features),
      m_hidden_features(hidden_features),
      m_out_features(out_features),
      m_first_block(first_block),
      m_first_has_bias(first_has_bias),
      m_first_activation(std::move(first_activation)),
      m_second_block(second_block),
      m_second_has_bias(second_has_bias),
      m_second_activation(std::move(second_activation)),
      m_first_name(std::move(first_name)),
      m_second_name(std::move(second_name)),
      m_first_compute(std::move(first_compute)),
      m_second_compute(std::move(second_compute)) {
    constructor_validate_and_infer_types();
}

LayerAttrs SparseLinearPair::first() const {
    return {m_in_features, m_hidden_features, m_first_block, m_first_has_bias, m_first_activation, m_first_compute};
}

LayerAttrs SparseLinearPair::second() const {
    return {m_hidden_features, m_out_features, m_second_block, m_second_has_bias, m_second_activation,
            m_second_compute};
}

size_t SparseLinearPair::second_input() const {
    return 1 + layer_input_count(this, 1, m_first_has_bias, m_first_compute.input_scale);
}

void SparseLinearPair::validate_and_infer_types() {
    NODE_VALIDATION_CHECK(this, get_input_size() >= 7, "SparseLinearPair needs X and two layers' constants");
    const bool known = m_load_checked.matches(this);
    std::vector<int32_t> first_sums, second_sums;
    check_layer(this, 1, first(), !known, &first_sums);
    const size_t second_at = second_input();
    NODE_VALIDATION_CHECK(this, get_input_size() >= second_at + 3, "SparseLinearPair needs the second layer's constants");
    check_layer(this, second_at, second(), !known, &second_sums);
    const size_t expected =
        second_at + layer_input_count(this, second_at, m_second_has_bias, m_second_compute.input_scale);
    NODE_VALIDATION_CHECK(this, get_input_size() == expected, "SparseLinearPair expects ", expected,
                          " inputs for its values types, has_bias and input_scale, got ", get_input_size());
    if (!known) m_load_checked.record(this, std::move(first_sums), std::move(second_sums));
    check_x(this);
    set_output_type(0, ov::element::f32, output_shape(this, m_in_features, m_out_features));
}

std::shared_ptr<ov::Node> SparseLinearPair::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    auto clone = std::make_shared<SparseLinearPair>();
    clone->m_in_features = m_in_features;
    clone->m_hidden_features = m_hidden_features;
    clone->m_out_features = m_out_features;
    clone->m_first_block = m_first_block;
    clone->m_first_has_bias = m_first_has_bias;
    clone->m_first_activation = m_first_activation;
    clone->m_second_block = m_second_block;
    clone->m_second_has_bias = m_second_has_bias;
    clone->m_second_activation = m_second_activation;
    clone->m_first_name = m_first_name;
    clone->m_second_name = m_second_name;
    clone->m_first_compute = m_first_compute;
    clone->m_second_compute = m_second_compute;
    clone->m_load_checked = m_load_checked.carried_to(new_args);
    clone->set_arguments(new_args);
    clone->constructor_validate_and_infer_types();
    return clone;
}

bool SparseLinearPair::visit_attributes(ov::AttributeVisitor& visitor) {
    visitor.on_attribute("in_features", m_in_features);
    visitor.on_attribute("hidden_features", m_hidden_features);
    visitor.on_attribute("out_features", m_out_features);
    visitor.on_attribute("first_block", m_first_block);
    visitor.on_attribute("first_has_bias", m_first_has_bias);
    visitor.on_attribute("first_activation", m_first_activation);
    visitor.on_attribute("second_block", m_second_block);
    visitor.on_attribute("second_has_bias", m_second_has_bias);
    visitor.on_attribute("second_activation", m_second_activation);
    visitor.on_attribute("first_name", m_first_name);
    visitor.on_attribute("second_name", m_second_name);
    visit_compute(visitor, "first_", m_first_compute);
    visit_compute(visitor, "second_", m_second_compute);
    return true;
}

bool SparseLinearPair::has_evaluate() const { return true; }

bool SparseLinearPair::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    const ov::Tensor& x = inputs[0];
    const ov::Shape y_shape = evaluated_shape(x, m_in_features, m_out_features);
    outputs[0].set_shape(y_shape);
    const size_t second_at = second_input();
    SpmmProblem a = layer_problem(inputs, 1, first());
    SpmmProblem b = layer_problem(inputs, second_at, second());
    a.x = x.data<const float>();
    b.y = outputs[0].data<float>();
    a.tokens = b.tokens = token_count(x.get_shape(), y_shape);
    a.row_sums = m_load_checked.row_sums(0);
    b.row_sums = m_load_checked.row_sums(1);
    a.weight_abs_max = m_load_checked.weight_abs_max(0);
    b.weight_abs_max = m_load_checked.weight_abs_max(1);
    check_once(this, m_first_checked, m_check_mutex, a, inputs[2].get_size());
    check_once(this, m_second_checked, m_check_mutex, b, inputs[second_at + 1].get_size());
    spmm_pair(a, b, active_isa(), ArenaParallel());
    return true;
}

// ---- SparseLinearSplit --------------------------------------------------------------------------------

SparseLinearSplit::SparseLinearSplit(const ov::OutputVector& args, int64_t in_features, int64_t out_features,
                                     int64_t parts, int64_t block, bool has_bias, std::string activation,
                                     std::string names, LayerCompute compute)
    : Op(args),
      m_layer{in_features, out_features, block, has_bias, std::move(activation), std::move(compute)},
      m_parts(parts),
      m_names(std::move(names)) {
    constructor_validate_and_infer_types();
}

void SparseLinearSplit::validate_and_infer_types() {
    const int64_t rows = m_layer.out_features;
    const bool known = m_load_checked.matches(this);
    std::vector<int32_t> sums;
    check_single_layer(this, m_layer, "SparseLinearSplit", !known, &sums);
    const std::string split = check_split(rows, m_parts);
    NODE_VALIDATION_CHECK(this, split.empty(), invalid_layer(this), split);
    if (!known) m_load_checked.record(this, std::move(sums));
    const std::string heads = check_heads(rows / m_parts, m_head_dim);
    NODE_VALIDATION_CHECK(this, heads.empty(), invalid_layer(this), heads);
    check_x(this);
    set_output_size(static_cast<size_t>(m_parts));
    ov::PartialShape part_shape = output_shape(this, m_layer.in_features, rows / m_parts);
    if (m_head_dim > 0) {
        NODE_VALIDATION_CHECK(this, part_shape.rank().compatible(3), invalid_layer(this),
                              "the heads' layout needs X of rank 3 [batch, seq, K], got ", part_shape);
        if (part_shape.rank().is_static())
            part_shape = ov::PartialShape{part_shape[0], rows / m_parts / m_head_dim, part_shape[1], m_head_dim};
        else
            part_shape = ov::PartialShape::dynamic(4);
    }
    for (int64_t i = 0; i < m_parts; ++i) set_output_type(static_cast<size_t>(i), ov::element::f32, part_shape);
}

std::shared_ptr<ov::Node> SparseLinearSplit::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    auto clone = std::make_shared<SparseLinearSplit>();
    clone->m_layer = m_layer;
    clone->m_parts = m_parts;
    clone->m_head_dim = m_head_dim;
    clone->m_names = m_names;
    clone->m_load_checked = m_load_checked.carried_to(new_args);
    clone->set_arguments(new_args);
    clone->constructor_validate_and_infer_types();
    return clone;
}

bool SparseLinearSplit::visit_attributes(ov::AttributeVisitor& visitor) {
    visit_layer(visitor, m_layer);
    visitor.on_attribute("parts", m_parts);
    visitor.on_attribute("head_dim", m_head_dim);
    visitor.on_attribute("names", m_names);
    return true;
}

bool SparseLinearSplit::has_evaluate() const { return true; }

bool SparseLinearSplit::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    const ov::Tensor& x = inputs[0];
    const int64_t part_rows = m_layer.out_features / m_parts;
    const ov::Shape token_major = evaluated_shape(x, m_layer.in_features, part_rows);
    ov::Shape y_shape = token_major;
    if (m_head_dim > 0) {
        OPENVINO_ASSERT(token_major.size() == 3, "the heads' layout needs X of rank 3, got ", x.get_shape());
        y_shape = ov::Shape{token_major[0], size_t(part_rows / m_head_dim), token_major[1], size_t(m_head_dim)};
    }
    float* parts[16] = {};
    for (int64_t i = 0; i < m_parts; ++i) {
        outputs[static_cast<size_t>(i)].set_shape(y_shape);
        parts[i] = outputs[static_cast<size_t>(i)].data<float>();
    }
    SpmmProblem p = layer_problem(inputs, 1, m_layer);
    p.x = x.data<const float>();
    p.y_parts = parts;
    p.part_rows = part_rows;
    p.tokens = token_count(x.get_shape(), token_major);
    if (m_head_dim > 0) {
        p.head_dim = m_head_dim;
        p.seq_len = static_cast<int64_t>(token_major[1]);
    }
    p.row_sums = m_load_checked.row_sums(0);
    p.weight_abs_max = m_load_checked.weight_abs_max(0);
    check_once(this, m_checked, m_check_mutex, p, inputs[2].get_size());
    spmm(p, active_isa(), ArenaParallel());
    return true;
}

}  // namespace pruneofa
