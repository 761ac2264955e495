// The extension's operations, opset "pruneofa".
//
// SparseLinear: Y[..., N] = act(X[..., K] · Wᵀ + bias) with W a constant sparse [N, K] matrix in
// (block-)CSR form.
//   Inputs:  0 X        f32 [..., K]   (any rank >= 1, dynamic dims allowed)
//            1 row_ptr  i32 [N / block_rows + 1] offsets into col_idx, in blocks
//            2 col_idx  i32 [n_blocks] first input column of each block
//            3 values   f32 or i8 [n_blocks * block * block_rows]
//            4 scales   f32 [N]        only when values are i8 (W = values * scales[row])
//            5 bias     f32 [N]        only when has_bias (index 4 when values are f32)
//   Attributes: in_features (K), out_features (N), block (1, 2, 4 or 8), has_bias, activation ("none" or
//   "gelu": GELU with erf, as BERT's, applied after the bias; fused because a separate Gelu node costs a
//   pass over the output that the dense graph does not pay).
//   block_rows (1, or 4: 4 x 1 FP32 blocks, row_ptr then per group of 4 rows, values 4 per block),
//   activation_quant ("none": FP32 compute; "dynamic" / "static": INT8 compute on i8 values in 1 x 4 blocks,
//   activations quantized to u8 per token, or with the calibrated activation_scale and
//   activation_zero_point), all optional with those defaults.
//   Output:  0 Y        f32 [..., N]
//
// SparseLinearPair: two SparseLinear layers in a row (BERT's FFN: up, GELU, down), Y = second(first(X)),
// run through spmm_pair so that each thread carries its token tiles through both layers and the [..., H]
// intermediate is never stored (docs/kernels.md). Inputs: X, the first layer's constants (as SparseLinear's
// 1..), then the second's. Attributes: in_features, hidden_features, out_features, first_/second_ block,
// has_bias, activation, block_rows, activation_quant, activation_scale, activation_zero_point, and
// first_/second_ name (the original layers' names, for sparsity accounting).
//
// SparseLinearSplit: several SparseLinear layers that read the same X (BERT's Q, K and V) as one stacked
// matrix, computed in one pass (one transpose of X, one fork/join), its output rows split into `parts`
// outputs of out_features / parts each. Inputs as SparseLinear's (the stacked rows); attributes
// in_features, out_features (all parts), parts, block, has_bias, activation, and names (the original
// layers' names, one per line, for sparsity accounting). Outputs: parts x f32 [..., out_features / parts].
// Optional attribute head_dim (default 0): when > 0, X must be [batch, seq, K] and each part is written in
// attention's heads' layout, [batch, out_features / parts / head_dim, seq, head_dim], what a Reshape to
// [batch, seq, heads, head_dim] and a Transpose(0, 2, 1, 3) of the token-major part make (the rewrite folds
// those nodes into it on static-shape models); a divisor of each part's rows.
//
// Every op checks its constants against its attributes in validate_and_infer_types, i.e. when a model is
// read or built (check_layer in sparse_layer_inputs.hpp, layer_layout.hpp; the compute attributes too, and
// INT8 compute's row sums are taken from the constants right after that check): an IR is untrusted input
// (OpenVINO Model Server loads it with --cpu_extension), and a malformed one must fail there, not read out
// of bounds at inference.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <openvino/op/op.hpp>

#include "sparse_layer_inputs.hpp"

namespace pruneofa {

class SparseLinear : public ov::op::Op {
public:
    OPENVINO_OP("SparseLinear", "pruneofa");

    SparseLinear() = default;
    SparseLinear(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t block,
                 bool has_bias, std::string activation = "none", LayerCompute compute = {});

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;

private:
    LayerAttrs m_layer;
    // The constants validate_and_infer_types checked in full, and their INT8 row sums computed then.
    CheckedConstants m_load_checked;
    // evaluate() checks the tensors it is given once more, on its first call (they are the constants).
    mutable std::atomic<bool> m_checked{false};
    mutable std::mutex m_check_mutex;
};

class SparseLinearPair : public ov::op::Op {
public:
    OPENVINO_OP("SparseLinearPair", "pruneofa");

    SparseLinearPair() = default;
    SparseLinearPair(const ov::OutputVector& args, int64_t in_features, int64_t hidden_features, int64_t out_features,
                     int64_t first_block, bool first_has_bias, std::string first_activation, int64_t second_block,
                     bool second_has_bias, std::string second_activation, std::string first_name,
                     std::string second_name, LayerCompute first_compute = {}, LayerCompute second_compute = {});

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;

private:
    LayerAttrs first() const;
    LayerAttrs second() const;
    size_t second_input() const;  // index of the second layer's row_ptr

    int64_t m_in_features = 0;
    int64_t m_hidden_features = 0;
    int64_t m_out_features = 0;
    int64_t m_first_block = 1;
    bool m_first_has_bias = false;
    std::string m_first_activation = "gelu";
    int64_t m_second_block = 1;
    bool m_second_has_bias = false;
    std::string m_second_activation = "none";
    std::string m_first_name;
    std::string m_second_name;
    LayerCompute m_first_compute;   // IR attributes first_block_rows, first_activation_quant, ...
    LayerCompute m_second_compute;  // second_block_rows, ...
    CheckedConstants m_load_checked;
    mutable std::atomic<bool> m_first_checked{false};
    mutable std::atomic<bool> m_second_checked{false};
    mutable std::mutex m_check_mutex;
};

class SparseLinearSplit : public ov::op::Op {
public:
    OPENVINO_OP("SparseLinearSplit", "pruneofa");

    SparseLinearSplit() = default;
    SparseLinearSplit(const ov::OutputVector& args, int64_t in_features, int64_t out_features, int64_t parts,
                      int64_t block, bool has_bias, std::string activation, std::string names,
                      LayerCompute compute = {});

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;

private:
    LayerAttrs m_layer;  // the stacked matrix: out_features counts all parts
    int64_t m_parts = 1;
    int64_t m_head_dim = 0;  // > 0: each part written [batch, heads, seq, head_dim] (X must be [batch, seq, K])
    std::string m_names;
    CheckedConstants m_load_checked;
    mutable std::atomic<bool> m_checked{false};
    mutable std::mutex m_check_mutex;
};

}  // namespace pruneofa
