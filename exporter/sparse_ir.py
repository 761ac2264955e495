"""``pruneofa export --sparse-ir``: an extra IR in which sparse Linear layers are pruneofa's SparseLinear op.

For C++ deployment (OpenVINO Model Server with ``--cpu_extension``, an application that calls
``core.add_extension``), where pruneofa's load-time rewrite does not run. The standard
``openvino_model.xml`` stays in the folder unchanged: optimum-intel, OVMS without the extension and
Triton keep loading it. An INT8 IR (a QAT export's, or the one ``calibrate`` writes) gets an INT8 sparse
IR: INT8 weights, INT8 compute, each activation FakeQuantize folded into the op. The layers are chosen as
at load time (mode ``auto``: the crossover measured for each shape on this CPU's kernel path; ``on``:
every eligible layer), the file keeps its constants exact (no FP16 compression), and two checks guard it:
every op's constants, read back into a dense matrix, equal the dense IR's weight position for position;
and the outputs match the dense IR on the parity inputs (within :data:`FP32_TOLERANCE`, or
:func:`int8_tolerance` for INT8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def int8_tolerance(levels: int | None) -> float:
    """The bound on an INT8 sparse IR's outputs against the dense INT8 IR, as a share of the largest output.

    Both run the same INT8 weights, and the op quantizes activations with the folded FakeQuantize's own
    scale and zero point, so with 8-bit activations (``levels`` 255) they differ only where float rounding
    moves an activation across a rounding tie: one level in a few elements (measured 1.5e-8 of the
    largest logit on avx512vnni; the bound, 0.1 %, is one activation step of 1/255 of the range
    propagating through a few layers). The avx2 route keeps 7-bit activations (``levels`` 127, against
    ``vpmaddubsw``'s saturation), a step twice as coarse in every folded layer: measured 1.2 %; bound 5 %.
    """
    return 1e-3 if levels == 255 else 0.05


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
    held to :func:`int8_tolerance` of the INT8 dense IR's largest output (FP32: :data:`FP32_TOLERANCE`)."""
    import openvino as ov

    import pruneofa.kernels as kernels

    flag = "--sparse-ir" if precision == "fp32" else "the INT8 sparse IR"
    if not kernels.available():
        raise InputError(
            f"{flag} needs pruneofa's kernels extension, which is not available here (no C++ compiler or "
            "a failed build: see the warning above); run 'python -m pruneofa.kernels.build', or export without it"
        )
    model = ov.Core().read_model(str(dense_xml))
    before = _dense_weights(model)
    # f32: what the check below and deploy's compile settings run dense layers in.
    report = kernels.rewrite(model, mode, int8_compute=precision == "int8", precision_hint="f32")
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
    xml = kernels.save_sparse_ir(model, folder / OPENVINO_SPARSE_XML)
    dense = exact_engine(dense_xml, outputs)
    sparse = Engine(
        xml, "openvino", outputs, ov_config={"INFERENCE_PRECISION_HINT": "f32"}, setup=kernels.register
    )
    worst = largest = 0.0
    for batch in batches:
        for expected, got in zip(dense(batch), sparse(batch), strict=True):
            mask = batch["attention_mask"].astype(bool)
            if expected.ndim >= 2 and expected.shape[:2] == mask.shape:
                expected, got = expected[mask], got[mask]
            worst = max(worst, float(np.abs(expected - got).max()))
            largest = max(largest, float(np.abs(expected).max()))
    if precision == "int8":
        share = int8_tolerance(kernels.int8_levels())
        tolerance = share * max(1.0, largest)
        bound = f"{tolerance:.3g} ({share:g} of the largest output, {largest:.3g})"
    else:
        tolerance = FP32_TOLERANCE
        bound = f"{tolerance:g}"
    if worst > tolerance:
        problems.append(f"sparse IR: outputs differ from the dense IR by up to {worst:.3g} > {bound}")
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
    )
    return info, problems
