"""``pruneofa export --sparse-ir``: an extra IR in which sparse Linear layers are pruneofa's SparseLinear op.

For C++ deployment (OpenVINO Model Server with ``--cpu_extension``, an application that calls
``core.add_extension``), where pruneofa's load-time rewrite does not run. The standard
``openvino_model.xml`` stays in the folder unchanged: optimum-intel, OVMS without the extension and
Triton keep loading it. The layers are chosen as at load time (mode ``auto``: the crossover measured for
each shape on this CPU's kernel path; ``on``: every eligible layer), the file keeps FP32 constants exact (no FP16 compression), and two
checks guard it: every op's constants, read back into a dense matrix, equal the dense IR's weight position
for position; and the outputs match the dense IR on the parity inputs.
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


def write_sparse_ir(
    dense_xml: Path,
    folder: Path,
    batches: list[dict[str, np.ndarray]],
    outputs: tuple[str, ...],
    *,
    mode: KernelMode = "auto",
) -> tuple[SparseIRInfo, list[str]]:
    """Write ``folder/openvino_model_sparse.xml/.bin`` from ``dense_xml``; returns its record and the
    problems found (empty when both checks passed)."""
    import openvino as ov

    import pruneofa.kernels as kernels

    if not kernels.available():
        raise InputError(
            "--sparse-ir needs pruneofa's kernels extension, which is not available here (no C++ compiler or "
            "a failed build: see the warning above); run 'python -m pruneofa.kernels.build', or export without it"
        )
    model = ov.Core().read_model(str(dense_xml))
    before = _dense_weights(model)
    report = kernels.rewrite(model, mode)
    if not report.sparse_layers:
        raise InputError(
            f"--sparse-ir: none of the {len(report.layers)} Linear layers is sparse enough for pruneofa's kernels "
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
    worst = 0.0
    for batch in batches:
        for expected, got in zip(dense(batch), sparse(batch), strict=True):
            mask = batch["attention_mask"].astype(bool)
            if expected.ndim >= 2 and expected.shape[:2] == mask.shape:
                expected, got = expected[mask], got[mask]
            worst = max(worst, float(np.abs(expected - got).max()))
    if worst > 1e-4:
        problems.append(f"sparse IR: outputs differ from the dense IR by up to {worst:.3g} > 1e-4")
    formats: dict[str, int] = {}
    for layer in report.sparse_layers:
        name = layer.format or "?"
        formats[name] = formats.get(name, 0) + 1
    info = SparseIRInfo(
        file=OPENVINO_SPARSE_XML,
        sparse_layers=len(report.sparse_layers),
        linear_layers=len(report.layers),
        formats=formats,
        kernel_path=report.isa,
        weights_identical=identical,
        max_abs_error=worst,
    )
    return info, problems
