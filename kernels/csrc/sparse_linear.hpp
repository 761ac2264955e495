// pruneofa::SparseLinear, opset "pruneofa": Y[..., N] = X[..., K] · Wᵀ + bias with W a constant sparse
// [N, K] matrix in (block-)CSR form.
//
// Inputs:  0 X        f32 [..., K]   (any rank >= 1, dynamic dims allowed)
//          1 row_ptr  i32 [N + 1]    offsets into col_idx, in blocks
//          2 col_idx  i32 [n_blocks] first input column of each 1 x block block
//          3 values   f32 or i8 [n_blocks * block]
//          4 scales   f32 [N]        only when values are i8 (W = values * scales[row])
//          5 bias     f32 [N]        only when has_bias (index 4 when values are f32)
// Attributes: in_features (K), out_features (N), block (1, 2, 4 or 8), has_bias, activation ("none" or
// "gelu": GELU with erf, as BERT's, applied after the bias; fused because a separate Gelu node costs a
// pass over the output that the dense graph does not pay).
// Output:  0 Y        f32 [..., N]
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include <openvino/op/op.hpp>

namespace pruneofa {

class SparseLinear : public ov::op::Op {
public:
    OPENVINO_OP("SparseLinear", "pruneofa");

    SparseLinear() = default;
    SparseLinear(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t block,
                 bool has_bias, std::string activation = "none");

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;

private:
    bool int8_values() const;
    size_t expected_inputs() const;

    int64_t m_in_features = 0;
    int64_t m_out_features = 0;
    int64_t m_block = 1;
    bool m_has_bias = false;
    std::string m_activation = "none";
    // The sparse inputs are constants: their structure is checked on the first evaluate() only.
    mutable std::atomic<bool> m_checked{false};
    mutable std::mutex m_check_mutex;
};

}  // namespace pruneofa
