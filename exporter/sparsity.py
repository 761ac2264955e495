"""Sparsity accounting: zeros of every weight matrix before export and in the exported constants.

The exported files are read back from disk (ONNX initializers and Constant nodes; OpenVINO Constant
ops, FP16 ones decoded), and each PyTorch weight is found among them by name or, where the exporter
renamed or transposed it (constant-folded ``Transpose`` of a Linear weight), by value. Then zeros are
compared position by position: a zero that became non-zero is *lost* (never allowed); a non-zero that
rounding turned into zero is *extra* (allowed in FP16/INT8, counted; in FP32 nothing may change).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pruneofa.core.manifest import SparsityReport, TensorSparsity


@dataclass
class TorchWeight:
    name: str
    values: np.ndarray
    is_linear: bool
    used: bool


def torch_weights(
    model: nn.Module, sample_inputs: dict[str, torch.Tensor], outputs: tuple[str, ...]
) -> list[TorchWeight]:
    """Every weight matrix (ndim ≥ 2) once (tied weights under their first name), marked Linear or not,
    and whether the task's outputs depend on it (found by one backward pass: no gradient, no path)."""
    linear_weights = {
        f"{name}.weight" for name, module in model.named_modules() if isinstance(module, nn.Linear)
    }
    params = [(name, p) for name, p in model.named_parameters(remove_duplicate=True) if p.ndim >= 2]
    flags = [p.requires_grad for _, p in params]
    for _, p in params:
        p.requires_grad_(True)
        p.grad = None
    with torch.enable_grad():
        result = model(**sample_inputs, return_dict=True)
        total = torch.stack([result[name].float().sum() for name in outputs]).sum()
        total.backward()
    weights = []
    for (name, p), flag in zip(params, flags, strict=True):
        weights.append(
            TorchWeight(name, p.detach().cpu().numpy().copy(), name in linear_weights, p.grad is not None)
        )
        p.grad = None
        p.requires_grad_(flag)
    return weights


def onnx_arrays(graph) -> dict[str, np.ndarray]:
    """Every constant of an ONNX graph by name: initializers and ``Constant`` nodes, any dtype."""
    from onnx import numpy_helper

    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arrays[node.output[0]] = numpy_helper.to_array(attr.t)
    return arrays


def onnx_constants(path: Path) -> list[tuple[str, np.ndarray]]:
    import onnx

    arrays = onnx_arrays(onnx.load(str(path)).graph)
    return [(name, arr) for name, arr in arrays.items() if arr.dtype.kind == "f" and arr.size > 1]


def openvino_constants(xml_path: Path) -> list[tuple[str, np.ndarray]]:
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    found = []
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        if op.get_output_element_type(0).get_type_name() not in ("f32", "f16", "bf16"):
            continue
        data = np.asarray(op.get_data())
        if data.size > 1:
            found.append((op.get_friendly_name(), data))
    return found


def _oriented(candidate: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The candidate viewed in the original layout: as stored, or transposed (folded Linear weights)."""
    core = tuple(d for d in candidate.shape if d != 1)
    views = []
    if core == tuple(d for d in shape if d != 1):
        views.append(candidate.reshape(shape))
    if len(shape) == 2 and shape[0] != shape[1] and core == (shape[1], shape[0]):
        views.append(candidate.reshape(shape[1], shape[0]).T)
    elif len(shape) == 2 and shape[0] == shape[1] and core == shape:
        views.append(candidate.reshape(shape).T)
    return views


def _tolerance(weights: np.ndarray, weight_format: str) -> float:
    scale = float(np.abs(weights).max()) if weights.size else 0.0
    if weight_format == "fp16":
        return scale * 2.0**-10 + 1e-7
    return scale * 1e-7


def account_sparsity(
    weights: list[TorchWeight], exported: list[tuple[str, np.ndarray]], weight_format: str
) -> tuple[SparsityReport, list[str]]:
    """Match, count and judge; returns the report and the list of problems (empty when it passed)."""
    by_size: dict[int, list[tuple[str, np.ndarray]]] = {}
    for name, arr in exported:
        by_size.setdefault(arr.size, []).append((name, arr))
    rows, problems = [], []
    for weight in weights:
        original = weight.values
        tol = _tolerance(original, weight_format)
        candidates = sorted(by_size.get(original.size, []), key=lambda c: not c[0].endswith(weight.name))
        match = None
        for name, arr in candidates:
            for view in _oriented(arr, original.shape):
                if float(np.abs(view.astype(np.float32) - original).max()) <= tol:
                    match = (name, view.astype(np.float32))
                    break
            if match:
                break
        zero_before = original == 0
        row: dict[str, Any] = dict(
            linear=weight.is_linear,
            name=weight.name,
            shape=list(original.shape),
            numel=int(original.size),
            zeros_before=int(zero_before.sum()),
        )
        if match is None:
            status = "folded" if weight.used else "unused"
            if weight.used and weight.is_linear:
                problems.append(f"Linear weight {weight.name} was not found in the exported graph")
            rows.append((weight, TensorSparsity(status=status, **row)))
            continue
        zero_after = match[1] == 0
        rows.append(
            (
                weight,
                TensorSparsity(
                    status="matched",
                    zeros_after=int(zero_after.sum()),
                    extra_zeros=int((zero_after & ~zero_before).sum()),
                    lost_zeros=int((zero_before & ~zero_after).sum()),
                    exported_name=match[0],
                    **row,
                ),
            )
        )
    report = summarize(
        [r for _, r in rows],
        weight_format,
        problems,
        lost_message="{lost} weights that were zero are non-zero after export",
        extra_message="{extra} non-zero FP32 weights became zero (FP32 export must not change any weight)"
        if weight_format == "fp32"
        else None,
    )
    return report, problems


def summarize(
    rows: list[TensorSparsity],
    weight_format: str,
    problems: list[str],
    *,
    lost_message: str,
    extra_message: str | None = None,
) -> SparsityReport:
    """Totals over the matched rows; a lost zero is always a problem (``lost_message``), an extra zero
    only where ``extra_message`` is given (FP32). Appends to ``problems``; passed = no problems."""
    matched = [r for r in rows if r.status == "matched" and r.zeros_after is not None]
    linear = [r for r in matched if r.linear]
    lost = sum(r.lost_zeros or 0 for r in matched)
    extra = sum(r.extra_zeros or 0 for r in matched)
    if lost:
        problems.append(lost_message.format(lost=lost))
    if extra and extra_message:
        problems.append(extra_message.format(extra=extra))
    return SparsityReport(
        weight_format=weight_format,
        tensors=rows,
        linear_numel=sum(r.numel for r in linear),
        linear_zeros_before=sum(r.zeros_before for r in linear),
        linear_zeros_after=sum(r.zeros_after or 0 for r in linear),
        total_numel=sum(r.numel for r in matched),
        total_zeros_before=sum(r.zeros_before for r in matched),
        total_zeros_after=sum(r.zeros_after or 0 for r in matched),
        extra_zeros=extra,
        lost_zeros=lost,
        position_exact=lost == 0 and extra == 0,
        passed=not problems,
    )


def _as_array(stored) -> np.ndarray:
    return np.asarray(getattr(stored, "values", stored))


def pattern_problems(pattern: dict[str, np.ndarray], stored: dict[str, object]) -> list[str]:
    """Every pruned matrix keeps its zeros, position by position, where the mask is known.

    ``pattern`` maps a weight name to the boolean array of its pruned positions (e.g. ``weight == 0`` of
    the sparse model a QAT run started from); ``stored`` maps names to what a model file holds (arrays, or
    :class:`~pruneofa.exporter.int8_weights.StoredWeight`, transposed or not). One line per matrix that is
    missing or has a non-zero at a pruned position; empty when the whole pattern survived. A share of
    zeros over all matrices, or the sparsest one, would miss one matrix that lost its zeros; this cannot."""
    problems = []
    for name, mask in pattern.items():
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            continue
        if name not in stored:
            problems.append(f"{name}: pruned matrix not found in the stored weights")
            continue
        values = _as_array(stored[name])
        if values.shape != mask.shape and values.ndim == 2 and values.T.shape == mask.shape:
            values = values.T
        if values.shape != mask.shape:
            problems.append(f"{name}: stored shape {values.shape} does not match its mask {mask.shape}")
            continue
        lost = int((mask & (values != 0)).sum())
        if lost:
            problems.append(f"{name}: {lost} of {int(mask.sum())} pruned weights are non-zero")
    return problems
