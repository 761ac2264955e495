"""Read a MatMul's constant weight out of an OpenVINO graph, in whichever form the exporters left it.

Forms handled (the weight is input 1 of a MatMul; [N, K] with ``transpose_b``, else [K, N]):
- ``Constant`` (FP32, FP16, BF16);
- ``Constant(f16) -> Convert`` (``ov.save_model``'s FP16 compression);
- ``Constant(i8|u8) -> Convert -> [Subtract(zero point)] -> Multiply(scale)`` (NNCF weight compression and
  PTQ): kept as INT8 with per-row scales when symmetric and per output channel, else dequantized to FP32;
- anything else whose inputs are all constants (``FakeQuantize`` on weights from QAT, Reshape,
  Transpose ...): folded with each node's own ``evaluate``, without touching the graph. A folded
  ``FakeQuantize`` whose outputs sit on a per-row integer grid of at most 256 levels becomes INT8 too.
Anything fed by a Parameter is not a constant weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_INT_TYPES = {"i8", "u8"}


@dataclass
class ConstWeight:
    """A weight oriented [N, K]: FP32 values, or INT8 values with per-row scales (``dense = q * scales``)."""

    dense: np.ndarray  # float32 [N, K] (dequantized when int8 is set)
    int8: np.ndarray | None = None  # int8 [N, K]
    scales: np.ndarray | None = None  # float32 [N]
    source: str = "fp32"  # "fp32", "fp16", "int8", "folded"


class NotConstant(Exception):
    """The subgraph depends on a model input (or a stateful node)."""


def _type(node: Any) -> str:
    return node.get_type_name()


def _constant_array(node: Any) -> np.ndarray:
    return np.array(node.get_data(), copy=True)


def fold(output: Any, cache: dict | None = None) -> np.ndarray:
    """Evaluate a constant-only subgraph ending at ``output`` (numpy array), or raise NotConstant."""
    import openvino as ov

    cache = {} if cache is None else cache
    node = output.get_node()
    key = (node.get_instance_id(), output.get_index())
    if key in cache:
        return cache[key]
    kind = _type(node)
    if kind == "Constant":
        result = _constant_array(node)
    elif kind in {"Parameter", "ReadValue", "Assign"} or node.get_input_size() == 0:
        raise NotConstant(f"{node.get_friendly_name()} ({kind}) is not constant")
    else:
        inputs = [
            ov.Tensor(np.ascontiguousarray(fold(node.input_value(i), cache)))
            for i in range(node.get_input_size())
        ]
        outputs = []
        for i in range(node.get_output_size()):
            shape = node.get_output_partial_shape(i)
            if not shape.is_static:
                raise NotConstant(f"{node.get_friendly_name()} has a dynamic output shape")
            outputs.append(ov.Tensor(node.get_output_element_type(i), shape.to_shape()))
        if not node.evaluate(outputs, inputs):
            raise NotConstant(f"{node.get_friendly_name()} ({kind}) cannot be evaluated")
        for i, tensor in enumerate(outputs):
            cache[(node.get_instance_id(), i)] = np.array(tensor.data, copy=True)
        result = cache[key]
    cache[key] = result
    return result


def _orient(array: np.ndarray, transpose_b: bool) -> np.ndarray:
    return array if transpose_b else array.T


def _per_row(scale: np.ndarray, shape_nk: tuple[int, int], transpose_b: bool) -> np.ndarray | None:
    """A scale (broadcast against the stored weight) as one value per output row, or None if it varies along K."""
    stored_shape = shape_nk if transpose_b else shape_nk[::-1]
    full = _orient(np.broadcast_to(scale.astype(np.float32), stored_shape), transpose_b)
    per_row = full[:, :1]
    return per_row[:, 0].copy() if np.array_equal(full, np.broadcast_to(per_row, full.shape)) else None


def _int8_pattern(multiply: Any, transpose_b: bool) -> ConstWeight | None:
    """``Convert(Constant int) [- zero point] * scale`` → INT8 + per-row scales when symmetric per row."""
    a, b = multiply.input_value(0), multiply.input_value(1)
    for data_side, scale_side in ((a, b), (b, a)):
        node = data_side.get_node()
        zero_point = None
        if _type(node) == "Subtract":
            zero_point = node.input_value(1)
            node = node.input_value(0).get_node()
        if _type(node) != "Convert":
            continue
        const = node.input_value(0).get_node()
        if _type(const) != "Constant" or const.get_output_element_type(0).get_type_name() not in _INT_TYPES:
            continue
        try:
            scale = fold(scale_side).astype(np.float32)
            zp = None if zero_point is None else fold(zero_point).astype(np.float32)
        except NotConstant:
            return None
        q = _constant_array(const)
        deq = (q.astype(np.float32) - (0.0 if zp is None else zp)) * scale
        if deq.ndim != 2:
            return None
        dense = _orient(deq, transpose_b).astype(np.float32)
        symmetric = zp is None or not np.any(zp)
        rows = _per_row(scale, dense.shape, transpose_b) if symmetric else None
        if rows is not None and q.dtype == np.int8:
            return ConstWeight(
                dense=dense, int8=np.ascontiguousarray(_orient(q, transpose_b)), scales=rows, source="int8"
            )
        return ConstWeight(dense=dense, source="int8")
    return None


def _int8_grid(dense: np.ndarray, fq: Any) -> ConstWeight | None:
    """INT8 view of a folded weight FakeQuantize (levels <= 256) when its values sit on a per-row grid."""
    levels = fq.get_attributes().get("levels", 0)
    if not 2 <= levels <= 256:
        return None
    try:
        low, high = fold(fq.input_value(3)), fold(fq.input_value(4))
    except NotConstant:
        return None
    step_full = np.broadcast_to(((high - low) / (levels - 1)).astype(np.float32), fq.get_output_shape(0))
    for transpose_b in (True, False):
        oriented = _orient(np.asarray(step_full), transpose_b)
        if oriented.shape != dense.shape:
            continue
        step = oriented[:, 0].copy()
        if not np.array_equal(oriented, np.broadcast_to(step[:, None], oriented.shape)):
            continue
        degenerate = step <= 0  # a zero range: the row must be all zeros (then any scale will do)
        if np.any(dense[degenerate] != 0):
            return None
        step[degenerate] = 1.0
        q = np.rint(dense / step[:, None])
        if q.min() < -128 or q.max() > 127:
            return None
        if np.allclose(q * step[:, None], dense, rtol=1e-5, atol=0.0):
            return ConstWeight(
                dense=dense, int8=q.astype(np.int8), scales=step.astype(np.float32), source="int8"
            )
    return None


def read_weight(matmul: Any) -> ConstWeight:
    """The MatMul's weight as [N, K]; raises NotConstant when it is not a constant weight."""
    transpose_b = bool(matmul.get_attributes().get("transpose_b", False))
    source_out = matmul.input_value(1)
    node = source_out.get_node()
    kind = _type(node)
    if kind == "Constant":
        element = node.get_output_element_type(0).get_type_name()
        array = _constant_array(node)
        if array.ndim == 2 and array.dtype.kind == "f":
            return ConstWeight(
                dense=_orient(array, transpose_b).astype(np.float32),
                source="fp32" if element == "f32" else element,
            )
    if kind == "Convert":
        inner = node.input_value(0).get_node()
        if _type(inner) == "Constant" and inner.get_output_element_type(0).is_real():
            array = _constant_array(inner)
            if array.ndim == 2:
                return ConstWeight(dense=_orient(array, transpose_b).astype(np.float32), source="fp16")
    if kind == "Multiply":
        found = _int8_pattern(node, transpose_b)
        if found is not None:
            return found
    folded = fold(source_out)
    if folded.ndim != 2:
        raise NotConstant(f"weight has rank {folded.ndim}")
    dense = _orient(folded, transpose_b).astype(np.float32)
    if kind == "FakeQuantize":
        grid = _int8_grid(dense, node)
        if grid is not None:
            return grid
    return ConstWeight(dense=dense, source="folded")


def read_bias(add: Any, matmul_output: Any, out_features: int) -> np.ndarray | None:
    """The constant of ``add`` (the MatMul's only consumer) as an [N] bias, or None if it is not one."""
    other = add.input_value(1) if add.input_value(0) == matmul_output else add.input_value(0)
    try:
        bias = fold(other)
    except NotConstant:
        return None
    if bias.size != out_features or (bias.ndim and bias.shape[-1] != out_features):
        return None
    out_rank = add.get_output_partial_shape(0).rank
    mm_rank = matmul_output.get_partial_shape().rank
    if out_rank.is_dynamic or mm_rank.is_dynamic or out_rank.get_length() != mm_rank.get_length():
        return None
    if bias.ndim > mm_rank.get_length():
        return None
    return bias.reshape(out_features).astype(np.float32)
