"""``pruneofa export --sparse-ir``: an extra IR in which sparse Linear layers are pruneofa's SparseLinear op.

For C++ deployment (OpenVINO Model Server with ``--cpu_extension``, an application that calls
``core.add_extension``), where pruneofa's load-time rewrite does not run. The standard
``openvino_model.xml`` stays in the folder unchanged: optimum-intel, OVMS without the extension and
Triton keep loading it. An INT8 IR (a QAT export's, or the one ``calibrate`` writes) gets an INT8 sparse
IR: INT8 weights, INT8 compute, each activation FakeQuantize folded into the op, and the attention in
FP32 (:mod:`pruneofa.kernels.attention`; the check below compares with the dense INT8 IR given the same
attention). The attention's NaN guards are moved as at load (:mod:`pruneofa.core.attention_guard`).
The layers are chosen as at load time (mode ``auto``: the crossover measured for each shape on this CPU's kernel path; ``on``:
every eligible layer), the file keeps its constants exact (no FP16 compression), and two checks guard it:
every op's constants, read back into a dense matrix, equal the dense IR's weight position for position;
and the outputs match the dense IR on the parity inputs (within :data:`FP32_TOLERANCE`, or
:func:`int8_bound` for INT8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pruneofa.core.choices import KernelMode
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import SparseIRInfo
from pruneofa.core.runtime import OPENVINO_SPARSE_XML, Engine, exact_engine


def _dense_weights(model: Any) -> dict[str, np.ndarray]:
    """Every Linear-like MatMul's weight as the [out, in] matrix it computes with, by node name."""
    from pruneofa.kernels.weights import NotConstant, read_weight

    weights = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        try:
            weights[op.get_friendly_name()] = read_weight(op).dense
        except NotConstant:
            continue
        except Exception:  # patterns the rewrite does not take are not compared either
            continue
    return weights


FP32_TOLERANCE = 1e-4  # FP32 sparse op against FP32 dense: only summation order differs


class Int8Bound(NamedTuple):
    """The bound on an INT8 sparse IR's outputs against the dense INT8 IR (both as shares)."""

    mean_share: float  # of the mean |output|: the mean |difference| over every output element
    p99_share: float  # of the largest |output|: the 99th percentile of |difference|


def int8_bound(levels: int | None) -> Int8Bound:
    """How far the INT8 sparse IR may be from the dense INT8 IR it was made from.

    Both run the same INT8 weights, and the op quantizes activations with the folded FakeQuantize's own
    step and zero point, so with 8-bit activations (``levels`` 255) a layer differs only where float
    rounding moves an activation across a rounding tie: one step in a few elements. Through the layers such
    a tie can move one sensitive token far while every other output stays within float noise, so the
    largest difference is reported, not gated; the gate is on the mean and the 99th percentile, which a
    wrong scale, zero point or column moves everywhere. The avx2 route keeps 7-bit activations where the
    weights use all 8 bits (against ``vpmaddubsw``'s saturation), a step twice as coarse in every layer,
    hence the looser bound. docs/kernels.md ("INT8 compute", accuracy) has the measured values.
    """
    return Int8Bound(0.02, 0.005) if levels == 255 else Int8Bound(0.15, 0.05)


def int8_gate(
    diff: np.ndarray, magnitude: np.ndarray, levels: int | None
) -> tuple[float, float, float, list[str]]:
    """Hold the differences ``diff`` (|sparse - dense| per output element, ``magnitude`` the dense |output|)
    to :func:`int8_bound`; returns the mean and 99th-percentile difference, the latter's bound, problems."""
    bound = int8_bound(levels)
    mean_error, p99_error = float(diff.mean()), float(np.quantile(diff, 0.99))
    mean_tolerance = bound.mean_share * max(float(magnitude.mean()), 1e-6)
    tolerance = bound.p99_share * max(float(magnitude.max()), 1e-6)
    problems = []
    if mean_error > mean_tolerance:
        problems.append(
            f"sparse IR: mean output difference from the dense INT8 IR {mean_error:.3g} > {mean_tolerance:.3g} "
            f"({bound.mean_share:g} of the mean output)"
        )
    if p99_error > tolerance:
        problems.append(
            f"sparse IR: 99th-percentile output difference from the dense INT8 IR {p99_error:.3g} > "
            f"{tolerance:.3g} ({bound.p99_share:g} of the largest output)"
        )
    return mean_error, p99_error, tolerance, problems


def write_sparse_ir(
    dense_xml: Path,
    folder: Path,
    batches: list[dict[str, np.ndarray]],
    outputs: tuple[str, ...],
    *,
    mode: KernelMode = "auto",
    precision: str = "fp32",
) -> tuple[SparseIRInfo, list[str]]:
    """Write ``folder/openvino_model_sparse.xml/.bin`` from ``dense_xml``; returns its record and the
    problems found (empty when both checks passed).

    ``precision="int8"``: ``dense_xml`` is a calibrated INT8 IR; the op keeps its INT8 weights and computes
    in INT8 with each activation FakeQuantize folded into its static quantization, and its outputs are
    held to :func:`int8_bound` against the INT8 dense IR (FP32: every output within :data:`FP32_TOLERANCE`)."""
    import openvino as ov

    import pruneofa.kernels as kernels
    from pruneofa.core.attention_guard import move_nan_guards
    from pruneofa.kernels.attention import dequantize_attention

    flag = "--sparse-ir" if precision == "fp32" else "the INT8 sparse IR"
    if not kernels.available():
        raise InputError(
            f"{flag} needs pruneofa's kernels extension, which is not available here (no C++ compiler or "
            "a failed build: see the warning above); run 'python -m pruneofa.kernels.build', or export without it"
        )
    model = ov.Core().read_model(str(dense_xml))
    before = _dense_weights(model)
    # f32: what the check below and deploy's compile settings run dense layers in. The attention's scalar
    # Multiplies stay graph nodes: folded, Q's and K's constants would no longer be the dense IR's weights,
    # which the check below (and anyone auditing the file) compares them with.
    report = kernels.rewrite(
        model, mode, int8_compute=precision == "int8", precision_hint="f32", fold_scales=False
    )
    if not report.sparse_layers:
        raise InputError(
            f"{flag}: none of the {len(report.layers)} Linear layers is sparse enough for pruneofa's kernels "
            f"(mode {mode}), so the sparse IR would be a copy of the dense one; export without --sparse-ir, or "
            "prune the model first (pruneofa prune / finetune)"
        )
    problems = []
    identical = True
    for node in kernels.sparse_nodes(model):
        for name, back in kernels.dense_weights(node).items():
            if (
                name not in before
                or back.shape != before[name].shape
                or not np.array_equal(back, before[name])
            ):
                identical = False
                problems.append(
                    f"sparse IR: the {node.get_type_name()} constants of {name} differ from the dense IR's weight"
                )
    move_nan_guards(model)  # the file runs as deploy would run it, also where our preparer is absent (OVMS)
    xml = kernels.save_sparse_ir(model, folder / OPENVINO_SPARSE_XML)
    # compared with the same attention, so the check measures the op alone
    same_attention = (
        (lambda core, dense_model: dequantize_attention(dense_model)) if report.attention_fp32 else None
    )
    dense = exact_engine(dense_xml, outputs, prepare=same_attention)
    sparse = Engine(
        xml, "openvino", outputs, ov_config={"INFERENCE_PRECISION_HINT": "f32"}, setup=kernels.register
    )
    diffs, expected_all = [], []
    for batch in batches:
        for expected, got in zip(dense(batch), sparse(batch), strict=True):
            mask = batch["attention_mask"].astype(bool)
            if expected.ndim >= 2 and expected.shape[:2] == mask.shape:
                expected, got = expected[mask], got[mask]
            diffs.append(np.abs(expected - got).ravel())
            expected_all.append(np.abs(expected).ravel())
    diff, magnitude = np.concatenate(diffs), np.concatenate(expected_all)
    worst = float(diff.max()) if diff.size else 0.0
    mean_error = p99_error = None
    if precision == "int8":
        # The coarsest activation grid any INT8-compute layer runs on (avx2: 7 bits unless its weights fit 7)
        levels = min(
            (
                kernels.int8_levels(weight.values) or 255
                for node in kernels.sparse_nodes(model)
                for weight in kernels.layer_weights(node).values()
                if weight.format == "int8-1x4"
            ),
            default=kernels.int8_levels(),
        )
        mean_error, p99_error, tolerance, found = int8_gate(diff, magnitude, levels)
        problems += found
    else:
        tolerance = FP32_TOLERANCE
        if worst > tolerance:
            problems.append(
                f"sparse IR: outputs differ from the dense IR by up to {worst:.3g} > {tolerance:g}"
            )
    formats: dict[str, int] = {}
    quant: dict[str, int] = {}
    for layer in report.sparse_layers:
        name = layer.format or "?"
        formats[name] = formats.get(name, 0) + 1
        if layer.activation_quant is not None:
            quant[layer.activation_quant] = quant.get(layer.activation_quant, 0) + 1
    info = SparseIRInfo(
        file=OPENVINO_SPARSE_XML,
        sparse_layers=len(report.sparse_layers),
        linear_layers=len(report.layers),
        formats=formats,
        kernel_path=report.isa,
        weights_identical=identical,
        max_abs_error=worst,
        precision="int8" if precision == "int8" else "fp32",
        mode="on" if mode == "on" else "auto",
        activation_quant=quant,
        tolerance=tolerance,
        mean_abs_error=mean_error,
        p99_abs_error=p99_error,
        attention_fp32=report.attention_fp32,
        smooth_quant_folded=report.smooth_quant_folded,
    )
    return info, problems
