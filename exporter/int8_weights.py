"""Read weight matrices back from FP32 and INT8 model files, dequantized, keyed so the two can be paired.

INT8 weights are stored as integers plus scale and zero point. A weight is zero exactly when its
integer equals the zero point, so dequantizing ``(q - zp) * scale`` gives exact zeros and the same
position-by-position comparison as for FP32 exports.

Pairing an FP32 tensor with its INT8 counterpart:
- ONNX Runtime names a quantized initializer ``<fp32 name>_quantized`` with ``<fp32 name>_scale`` and
  ``<fp32 name>_zero_point`` beside it (``<fp32 name>_Transposed_…`` where it transposed a ``Gemm``
  weight first), so the key is the FP32 initializer name.
- NNCF renames constants but keeps the names of the operations that consume them, so the key is
  (consumer operation, input port), found by following the weight through its decompression chain
  (``Convert`` → ``Subtract`` zero point → ``Multiply`` scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class StoredWeight:
    name: str
    values: np.ndarray  # float32, dequantized
    precision: str  # "int8", "fp16" or "fp32"


def _dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None
) -> np.ndarray:
    q = q.astype(np.float32)
    zp = np.zeros(1, np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size > 1 and scale.ndim == 1:
        if axis is None:  # per-channel without an explicit axis: the (last) dimension of that length
            axis = max(i for i, d in enumerate(q.shape) if d == scale.size)
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.size == scale.size else zp
    return (q - zp) * scale


def onnx_weights(path: Path) -> dict[str, StoredWeight]:
    """Float and quantized initializers of an ONNX file, keyed by FP32 initializer name."""
    import onnx

    from pruneofa.exporter.sparsity import onnx_arrays

    graph = onnx.load(str(path)).graph
    arrays = onnx_arrays(graph)
    axes = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            axes[node.input[0]] = next((a.i for a in node.attribute if a.name == "axis"), None)
    found: dict[str, StoredWeight] = {}
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and arr.size > 1:
            found.setdefault(name, StoredWeight(name, arr.astype(np.float32), "fp32"))
    for name, arr in arrays.items():
        if name.endswith("_quantized") and arr.dtype in (np.int8, np.uint8):
            base = name.removesuffix("_quantized")
            scale = arrays.get(f"{base}_scale", arrays.get(f"{name}_scale"))
            zero_point = arrays.get(f"{base}_zero_point", arrays.get(f"{name}_zero_point"))
            if scale is None:
                continue
            values = _dequantize(arr, scale, zero_point, axes.get(name))
            if base.endswith("_Transposed"):  # a Gemm(transB=1) weight that ONNX Runtime transposed first
                base, values = base.removesuffix("_Transposed"), values.T
            found[base] = StoredWeight(name, values, "int8")
    return found


def openvino_weights(
    xml_path: Path,
) -> tuple[dict[str, list[tuple[str, int]]], dict[tuple[str, int], StoredWeight]]:
    """(constant name → consumer keys, consumer key → dequantized weight) for an OpenVINO IR."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    by_name: dict[str, list[tuple[str, int]]] = {}
    by_key: dict[tuple[str, int], StoredWeight] = {}
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        element = op.get_output_element_type(0).get_type_name()
        if element not in ("f32", "f16", "bf16", "i8", "u8"):
            continue
        data = np.asarray(op.get_data())
        if data.size < 2:
            continue
        precision = {"i8": "int8", "u8": "int8", "f16": "fp16"}.get(element, "fp32")
        for key, values in _follow_chain(op, data):
            by_name.setdefault(op.get_friendly_name(), []).append(key)
            by_key[key] = StoredWeight(op.get_friendly_name(), values, precision)
    return by_name, by_key


def _follow_chain(op, values: np.ndarray) -> list[tuple[tuple[str, int], np.ndarray]]:
    """Evaluate Convert/Subtract/Multiply-by-constant steps; return (consumer, port) → values at its input."""
    results = []
    for target in op.output(0).get_target_inputs():
        node, port = target.get_node(), target.get_index()
        kind = node.get_type_name()
        other = [i.get_source_output().get_node() for i in node.inputs() if i.get_index() != port]
        if kind == "Convert":
            results += _follow_chain(node, values.astype(np.float32))
        elif kind in ("Subtract", "Multiply") and len(other) == 1 and other[0].get_type_name() == "Constant":
            operand = np.asarray(other[0].get_data()).astype(np.float32)
            if operand.size > values.size:  # this constant is the operand, not the weight
                results.append(((node.get_friendly_name(), port), values.astype(np.float32)))
                continue
            stepped = (
                values.astype(np.float32) - operand
                if kind == "Subtract"
                else values.astype(np.float32) * operand
            )
            results += _follow_chain(node, stepped)
        else:
            results.append(((node.get_friendly_name(), port), values.astype(np.float32)))
    return results


_PASS_THROUGH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze")


def _from_constant(node, depth: int = 6) -> bool:
    """Whether ``node`` is a constant or a decompression / reshaping chain that starts at one."""
    while depth > 0:
        kind = node.get_type_name()
        if kind == "Constant":
            return True
        if kind not in _PASS_THROUGH:
            return False
        node = node.input(0).get_source_output().get_node()
        depth -= 1
    return False


def float_matmuls(xml_path: Path) -> list[str]:
    """The activation-by-activation MatMuls of an IR (attention scores and context) that run in float:
    no input comes through a FakeQuantize. NNCF's post-training quantization quantizes every one, so in
    an INT8 IR these are the ones accuracy control reverted (weights kept in float are found and named
    by the sparsity accounting instead)."""
    import openvino as ov

    names = []
    for op in ov.Core().read_model(str(xml_path)).get_ops():
        if op.get_type_name() != "MatMul":
            continue
        sources = [port.get_source_output().get_node() for port in op.inputs()]
        if any(_from_constant(source) for source in sources):
            continue
        if not any(source.get_type_name() == "FakeQuantize" for source in sources):
            names.append(op.get_friendly_name())
    return names
