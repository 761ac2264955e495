#include "sparse_linear.hpp"

#include <mutex>
#include "spmm.hpp"
#include "tbb_parallel.hpp"

namespace pruneofa {
namespace {

}  // namespace

SparseLinear::SparseLinear(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t block,
                           bool has_bias, std::string activation)
    : Op(args),
      m_in_features(in_features),
      m_out_features(out_features),
      m_block(block),
      m_has_bias(has_bias),
      m_activation(std::move(activation)) {
    constructor_validate_and_infer_types();
}

bool SparseLinear::int8_values() const { return get_input_element_type(3) == ov::element::i8; }

size_t SparseLinear::expected_inputs() const { return 4 + (int8_values() ? 1 : 0) + (m_has_bias ? 1 : 0); }

void SparseLinear::validate_and_infer_types() {
    NODE_VALIDATION_CHECK(this, get_input_size() >= 4, "SparseLinear needs X, row_ptr, col_idx and values");
    NODE_VALIDATION_CHECK(this, m_block == 1 || m_block == 2 || m_block == 4 || m_block == 8,
                          "block must be 1, 2, 4 or 8, got ", m_block);
    NODE_VALIDATION_CHECK(this, m_in_features >= 0 && m_out_features >= 0, "negative feature count");
    NODE_VALIDATION_CHECK(this, m_activation == "none" || m_activation == "gelu",
                          "activation must be \"none\" or \"gelu\", got ", m_activation);
    NODE_VALIDATION_CHECK(this, get_input_size() == expected_inputs(), "SparseLinear expects ", expected_inputs(),
                          " inputs for its values type and has_bias, got ", get_input_size());
    const auto x_type = get_input_element_type(0);
    NODE_VALIDATION_CHECK(this, x_type.is_dynamic() || x_type == ov::element::f32, "X must be f32, got ", x_type);
    NODE_VALIDATION_CHECK(this, get_input_element_type(1) == ov::element::i32, "row_ptr must be i32");
    NODE_VALIDATION_CHECK(this, get_input_element_type(2) == ov::element::i32, "col_idx must be i32");
    NODE_VALIDATION_CHECK(this, get_input_element_type(3) == ov::element::f32 || int8_values(),
                          "values must be f32 or i8");
    for (size_t i = 4; i < get_input_size(); ++i)
        NODE_VALIDATION_CHECK(this, get_input_element_type(i) == ov::element::f32, "scales and bias must be f32");

    // Sizes only: OpenVINO calls this on every inference with dynamic shapes, so the O(nnz) structure
    // check runs once per node, in the first evaluate().
    if (get_input_partial_shape(1).is_static())
        NODE_VALIDATION_CHECK(this, ov::shape_size(get_input_shape(1)) == size_t(m_out_features + 1),
                              "row_ptr must hold out_features + 1 entries");
    if (get_input_partial_shape(2).is_static() && get_input_partial_shape(3).is_static())
        NODE_VALIDATION_CHECK(this,
                              ov::shape_size(get_input_shape(3)) == ov::shape_size(get_input_shape(2)) * size_t(m_block),
                              "values must hold block entries per col_idx entry");

    const auto& x_shape = get_input_partial_shape(0);
    ov::PartialShape y_shape = x_shape;
    if (x_shape.rank().is_static()) {
        NODE_VALIDATION_CHECK(this, x_shape.rank().get_length() >= 1, "X must have rank >= 1");
        const auto& last = x_shape[x_shape.rank().get_length() - 1];
        NODE_VALIDATION_CHECK(this, last.compatible(m_in_features), "X's last dimension ", last,
                              " does not match in_features ", m_in_features);
        y_shape[y_shape.rank().get_length() - 1] = m_out_features;
    }
    set_output_type(0, ov::element::f32, y_shape);
}

std::shared_ptr<ov::Node> SparseLinear::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    return std::make_shared<SparseLinear>(new_args, m_in_features, m_out_features, m_block, m_has_bias,
                                          m_activation);
}

bool SparseLinear::visit_attributes(ov::AttributeVisitor& visitor) {
    visitor.on_attribute("in_features", m_in_features);
    visitor.on_attribute("out_features", m_out_features);
    visitor.on_attribute("block", m_block);
    visitor.on_attribute("has_bias", m_has_bias);
    visitor.on_attribute("activation", m_activation);
    return true;
}

bool SparseLinear::has_evaluate() const { return true; }

bool SparseLinear::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    const ov::Tensor& x = inputs[0];
    const ov::Shape x_shape = x.get_shape();
    OPENVINO_ASSERT(!x_shape.empty() && x_shape.back() == size_t(m_in_features), "SparseLinear: X shape ", x_shape,
                    " does not end in in_features ", m_in_features);
    ov::Shape y_shape = x_shape;
    y_shape.back() = static_cast<size_t>(m_out_features);
    outputs[0].set_shape(y_shape);

    const bool int8 = inputs[3].get_element_type() == ov::element::i8;
    const size_t n_blocks = inputs[2].get_size();
    OPENVINO_ASSERT(inputs[1].get_size() == size_t(m_out_features + 1) &&
                        inputs[3].get_size() == n_blocks * size_t(m_block),
                    "SparseLinear: sparse inputs do not match out_features / block");
    SpmmProblem p;
    p.x = x.data<const float>();
    p.y = outputs[0].data<float>();
    p.tokens = static_cast<int64_t>(ov::shape_size(x_shape) / std::max<size_t>(1, x_shape.back()));
    if (m_in_features == 0) p.tokens = static_cast<int64_t>(ov::shape_size(y_shape) / std::max<size_t>(1, y_shape.back()));
    p.in_features = m_in_features;
    p.out_features = m_out_features;
    p.row_ptr = inputs[1].data<const int32_t>();
    p.col_idx = inputs[2].data<const int32_t>();
    OPENVINO_ASSERT(p.row_ptr[m_out_features] == static_cast<int32_t>(n_blocks), "SparseLinear: row_ptr end");
    p.int8 = int8;
    if (int8) {
        p.values_i8 = inputs[3].data<const int8_t>();
        p.scales = inputs[4].data<const float>();
    } else {
        p.values_f32 = inputs[3].data<const float>();
    }
    p.bias = m_has_bias ? inputs.back().data<const float>() : nullptr;
    p.block = static_cast<int>(m_block);
    p.activation = m_activation == "gelu" ? kActivationGeluErf : kActivationNone;
    if (!m_checked.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(m_check_mutex);
        if (!m_checked.load(std::memory_order_relaxed)) {
            const char* err = validate(p, static_cast<int64_t>(n_blocks));
            OPENVINO_ASSERT(err == nullptr, "SparseLinear ", get_friendly_name(), ": invalid sparse weight: ", err);
            m_checked.store(true, std::memory_order_release);
        }
    }
    spmm(p, active_isa(), ArenaParallel());
    return true;
}

}  // namespace pruneofa
