"""Sparsity after INT8 quantization, position by position against the FP32 export it came from.

The FP32 export's manifest already maps every PyTorch weight to its exported constant; this module
finds the same weight in the INT8 model (:mod:`pruneofa.exporter.int8_weights` reads INT8 constants back) and compares zeros: a weight
that was zero in FP32 must be zero in INT8 (symmetric weight quantization guarantees it; an asymmetric
zero point would break it), and weights that rounding turned into zero are counted separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pruneofa.core.manifest import SparsityReport, TensorSparsity
from pruneofa.exporter.int8_weights import StoredWeight, onnx_weights, openvino_weights
from pruneofa.exporter.sparsity import summarize


def _pairs(
    target: str, fp32_file: Path, int8_file: Path
) -> tuple[dict[str, StoredWeight], dict[str, StoredWeight | None]]:
    """(exported name → FP32 weight, exported name → INT8-side weight or None) for every FP32 constant."""
    if target == "onnx":
        fp32, int8 = onnx_weights(fp32_file), onnx_weights(int8_file)
        return fp32, {name: int8.get(name) for name in fp32}
    fp32_keys, fp32_by_key = openvino_weights(fp32_file)
    _, int8_by_key = openvino_weights(int8_file)
    fp32_by_name, int8_by_name = {}, {}
    for name, keys in fp32_keys.items():
        fp32_by_name[name] = fp32_by_key[keys[0]]
        int8_by_name[name] = next((int8_by_key[k] for k in keys if k in int8_by_key), None)
    return fp32_by_name, int8_by_name


def _aligned(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    if values.shape == shape:
        return values
    if values.size == int(np.prod(shape)) and values.ndim == 2 and values.T.shape == shape:
        return values.T
    if values.size == int(np.prod(shape)):
        return values.reshape(shape)
    return None


def account_int8_sparsity(
    fp32_report: SparsityReport, target: str, fp32_file: Path, int8_file: Path
) -> tuple[SparsityReport, list[str], list[str]]:
    """Returns the INT8 report, the problems (empty when it passed) and the weights kept in float."""
    fp32, int8 = _pairs(target, fp32_file, int8_file)
    rows, problems, kept = [], [], []
    for row in fp32_report.tensors:
        if row.status != "matched" or row.exported_name not in fp32:
            rows.append(row.model_copy(update={"zeros_after": None, "extra_zeros": None, "lost_zeros": None}))
            continue
        before = fp32[row.exported_name].values
        stored = int8.get(row.exported_name)
        after = _aligned(stored.values, before.shape) if stored is not None else None
        if stored is None or after is None:
            problems.append(f"{row.name} was not found in the INT8 model")
            rows.append(
                row.model_copy(
                    update={"status": "folded", "zeros_after": None, "extra_zeros": None, "lost_zeros": None}
                )
            )
            continue
        if stored.precision != "int8":
            kept.append(row.name)
        zero_before, zero_after = before == 0, after == 0
        rows.append(
            TensorSparsity(
                name=row.name,
                linear=row.linear,
                shape=row.shape,
                numel=row.numel,
                zeros_before=int(zero_before.sum()),
                status="matched",
                zeros_after=int(zero_after.sum()),
                extra_zeros=int((zero_after & ~zero_before).sum()),
                lost_zeros=int((zero_before & ~zero_after).sum()),
                exported_name=stored.name,
                precision=stored.precision,
            )
        )
    report = summarize(
        rows,
        "int8",
        problems,
        lost_message="{lost} weights that were zero in FP32 are non-zero in INT8 (asymmetric weight zero point?)",
    )
    return report, problems, kept
