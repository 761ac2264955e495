"""Scalar Multiplies behind a sparse node folded into its weights: attention's Q and K scaling.

Exported BERT attention (transformers' SDPA through ONNX) scales Q and Kᵀ by head_dim^(-1/4) each, a
Multiply by a scalar constant behind each of them, after the Reshape/Transpose into heads. OpenVINO runs
those Multiplies as nodes of their own between pruneofa's Q/K/V node and the attention; where the plugin
computes in bf16 (OpenVINO's default on CPUs with AVX512_BF16 or AMX) each also costs two layout and
precision Reorders around it. The product is linear in each output row, so a Multiply by c reached from
a node's output through data-movement nodes only (Reshape, Transpose) is the same as scaling that
output's rows: the weights (FP32 values, or INT8's per-row scales) and the bias by c. The Multiply then
goes. The result differs from the unfolded graph by float rounding only (c is applied to the weight
scale and the bias instead of to the sum).

Folded for SparseLinear and SparseLinearSplit nodes (per part) without a fused activation (GELU does not
commute with a scale); where c is finite and nonzero, so every stored zero stays a zero.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pruneofa.kernels import formats
from pruneofa.kernels.rewrite import OP_TYPE, SPLIT_OP_TYPE, _constants, layer_weights, replace_output

DATA_MOVEMENT = ("Reshape", "Transpose")


def _scalar_constant(value: Any) -> float | None:
    """The value of a Constant that broadcasts as a scalar (every dimension 1), else None."""
    node = value.get_node()
    if node.get_type_name() != "Constant":
        return None
    data = np.asarray(node.get_data())
    if data.size != 1 or data.dtype != np.float32:
        return None
    return float(data.reshape(()))


def _sole_data_consumer(output: Any) -> Any | None:
    """The one input that reads ``output``'s values (ShapeOf consumers read only its shape), else None."""
    readers = [t for t in output.get_target_inputs() if t.get_node().get_type_name() != "ShapeOf"]
    return readers[0] if len(readers) == 1 else None


def scalar_multiply(output: Any) -> tuple[float, Any, int] | None:
    """(c, the Multiply, the index of its data input) where ``output``'s values reach a Multiply by a
    scalar constant c through Reshape/Transpose nodes only (each the sole reader of what it reads), and
    the Multiply's output has the shape of its data input; None otherwise."""
    current = output
    for _ in range(8):  # a few data-movement nodes at most
        target = _sole_data_consumer(current)
        if target is None:
            return None
        node = target.get_node()
        if node.get_type_name() in DATA_MOVEMENT and target.get_index() == 0:
            current = node.output(0)
            continue
        if node.get_type_name() != "Multiply":
            return None
        index = target.get_index()
        c = _scalar_constant(node.input_value(1 - index))
        same_shape = node.get_output_partial_shape(0) == current.get_partial_shape()
        if c is None or not math.isfinite(c) or c == 0.0 or not same_shape:
            return None
        return c, node, index
    return None


def scaled(weight: formats.SparseWeight, c: float) -> formats.SparseWeight:
    """``weight`` with every output row multiplied by c: INT8's per-row scales (the integers stay), or the
    FP32 values; the bias too."""
    factor = np.float32(c)
    bias = None if weight.bias is None else (weight.bias * factor).astype(np.float32)
    if weight.scales is not None:
        return dataclasses.replace(weight, scales=(weight.scales * factor).astype(np.float32), bias=bias)
    return dataclasses.replace(weight, values=(weight.values * factor).astype(weight.values.dtype), bias=bias)


def fold_output_scales(model: Any, create: Any) -> int:
    """Fold every qualifying scalar Multiply behind a SparseLinear or SparseLinearSplit node of ``model``
    (modified in place) into the node's constants; returns how many Multiplies went. ``create(type, inputs,
    attributes)`` makes an extension node (the rewrite's factory)."""
    removed = 0
    for node in [op for op in model.get_ordered_ops() if op.get_type_name() in (OP_TYPE, SPLIT_OP_TYPE)]:
        attributes = dict(node.get_attributes())
        if str(attributes.get("activation", "none")) != "none":
            continue
        found = [scalar_multiply(node.output(i)) for i in range(node.get_output_size())]
        if not any(found):
            continue
        parts = [
            scaled(w, f[0]) if f else w for w, f in zip(layer_weights(node).values(), found, strict=True)
        ]
        weight = formats.stack_rows(parts) if len(parts) > 1 else parts[0]
        inputs = [node.input_value(0), *_constants(weight, node.get_friendly_name())]
        if bool(attributes.get("input_scale", False)):  # the activations' factors, unchanged
            inputs.append(node.input_value(node.get_input_size() - 1))
        folded = create(node.get_type_name(), inputs, attributes)
        folded.set_friendly_name(node.get_friendly_name())
        for index in range(node.get_output_size()):
            replace_output(node.output(index), folded.output(index))
        for item in found:
            if item is None:
                continue
            _, multiply, data = item
            replace_output(multiply.output(0), multiply.input_value(data))
            removed += 1
    if removed:
        model.validate_nodes_and_infer_types()
    return removed
