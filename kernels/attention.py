"""Attention in FP32 beside the INT8 sparse op: the activation ``FakeQuantize`` nodes that feed only the
attention's two activation × activation MatMuls (Q·Kᵀ and P·V) are removed.

NNCF's INT8 IRs (PTQ and QAT, ``model_type=TRANSFORMER``) quantize those MatMuls' inputs too. OpenVINO's
CPU plugin fuses a transformer's attention (MatMul, Add, Softmax, MatMul and the Transposes around them)
into one multi-head-attention subgraph only where no FakeQuantize sits inside it; with them it runs Q·Kᵀ
and P·V as two INT8 GEMMs with their own Softmax, Transposes and quantization nodes. Once pruneofa's op
runs the Linear layers, that unfused attention is the largest part of the rest of the graph. Measured on
all-MiniLM-L6-v2, 90 % in 1 × 4 INT8 blocks, seq 128, batch 1, 2 threads (docs/kernels.md, "Sparse INT8
against the targets"): 15 % off the model's latency with oneDNN capped to AVX2 and no change on AVX512-VNNI, where the
INT8 GEMMs are fast.

Accuracy: the attention then computes on the FP32 values NNCF would have rounded to its 8-bit grid, so the
model moves towards its FP32 original, not away from it (measured: the same distance to the FP32 model to
three digits). The check of the sparse IR compares it with the dense INT8 IR given the same treatment, so
it still measures the op alone (:func:`pruneofa.exporter.sparse_ir.write_sparse_ir`).
"""

from __future__ import annotations

from typing import Any


def _attention_matmul(node: Any) -> bool:
    """A MatMul of two activations of rank 3 or more (attention's Q·Kᵀ or P·V; a Linear's weight has rank 2)."""
    if node.get_type_name() != "MatMul":
        return False
    for index in range(2):
        rank = node.get_input_partial_shape(index).rank
        if not rank.is_static or rank.get_length() < 3:
            return False
    return True


# Ops that only move values (the heads' split of V: Reshape, then Transpose): a FakeQuantize in front of
# them still quantizes nothing but the MatMul's operand.
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze"})


def _feeds_only_attention(output: Any, depth: int = 0) -> bool:
    """Every path from ``output`` reaches an attention MatMul through layout ops only (at most 4 deep)."""
    targets = list(output.get_target_inputs())
    if not targets or depth > 4:
        return False
    for target in targets:
        node = target.get_node()
        if _attention_matmul(node):
            continue
        if node.get_type_name() not in _LAYOUT_OPS or target.get_index() != 0:
            return False
        if not _feeds_only_attention(node.output(0), depth + 1):
            return False
    return True


def dequantize_attention(model: Any) -> int:
    """Remove (in place) every FakeQuantize whose consumers are all attention MatMuls, directly or through
    layout ops (V's FakeQuantize sits before the Reshape and Transpose that split the heads), wiring its
    input to them; returns how many were removed. A FakeQuantize that also feeds anything else stays."""
    removed = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        targets = list(op.output(0).get_target_inputs())
        if not _feeds_only_attention(op.output(0)):
            continue
        source = op.input_value(0)
        for target in targets:
            target.replace_source_output(source)
        removed += 1
    return removed
