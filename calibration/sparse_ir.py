"""The sparse IR of an INT8 folder is INT8: ``calibrate`` regenerates ``openvino_model_sparse.xml``.

An FP32 export written with ``--sparse-ir`` holds an IR with pruneofa's SparseLinear op and FP32
constants. Copied into the ``-int8`` folder it would ship FP32 weights under the INT8 name, and it is not
the model the calibration checked. So it is never copied: it is written again from the calibrated INT8 IR
(:func:`pruneofa.exporter.sparse_ir.write_sparse_ir` with ``precision="int8"``: INT8 weights, INT8
compute, each activation FakeQuantize folded into the op's static quantization), with the same checks as
at export. Where that cannot be done (no kernels here, or no layer qualifies in INT8) the folder gets no
sparse IR and one line says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import Manifest, SparseIRInfo
from pruneofa.core.runtime import OPENVINO_SPARSE_BIN, OPENVINO_SPARSE_XML

SPARSE_IR_FILES = (OPENVINO_SPARSE_XML, OPENVINO_SPARSE_BIN)


def has_sparse_ir(folder: Path, manifest: Manifest) -> bool:
    """Whether the FP32 export carries a sparse IR (its manifest records one, or the file is there)."""
    recorded = manifest.export is not None and manifest.export.sparse_ir is not None
    return recorded or (folder / OPENVINO_SPARSE_XML).is_file()


def write_int8_sparse_ir(
    fp32_manifest: Manifest,
    int8_xml: Path,
    staging: Path,
    batches: list[dict[str, np.ndarray]],
    outputs: tuple[str, ...],
) -> tuple[SparseIRInfo | None, list[str]]:
    """Write the INT8 sparse IR beside ``int8_xml`` in ``staging``; returns its record and the problems
    its checks found, or ``(None, [])`` (and one line on stderr) when none could be written."""
    import pruneofa.kernels as kernels
    from pruneofa.exporter.sparse_ir import write_sparse_ir

    previous = fp32_manifest.export.sparse_ir if fp32_manifest.export is not None else None
    mode = previous.mode if previous is not None else "auto"
    if not kernels.available():
        reason = "pruneofa's kernels extension is not available here (run 'python -m pruneofa.kernels.build')"
    else:
        try:
            return write_sparse_ir(int8_xml, staging, batches, outputs, mode=mode, precision="int8")
        except InputError as err:
            reason = str(err)
        for name in SPARSE_IR_FILES:  # nothing half-written stays behind
            (staging / name).unlink(missing_ok=True)
    print(
        f"note: the INT8 folder has no {OPENVINO_SPARSE_XML} (the FP32 one is not copied: it is not this "
        f"model): {reason}",
        file=sys.stderr,
        flush=True,
    )
    return None, []
