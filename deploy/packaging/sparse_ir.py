"""Shipping pruneofa's kernels with a sparse IR in an OpenVINO Model Server repository.

A folder with a sparse IR (``openvino_model_sparse.xml``, from ``pruneofa export --sparse-ir``) becomes an
OVMS repository that serves it: the kernels library that defines pruneofa's op is copied to
``extensions/`` with a record of what it was built against, and the repository's ``README.md`` gives the
start command with OVMS's ``--cpu_extension`` (a server parameter; config.json has no key for it). The copy
is checked to run the packaged model once, in a fresh OpenVINO core in a child process, before anything
moves into place (:mod:`.ir_checks`)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import sha256_file
from pruneofa.core.runtime import OPENVINO_SPARSE_BIN, OPENVINO_SPARSE_XML

EXTENSIONS_DIR = "extensions"  # an OVMS repository's kernels library, beside config.json
KERNELS_RECORD = "pruneofa_kernels.json"  # what the library is and was built against
OVMS_MOUNT = "/models"  # where the documented docker command mounts the repository


@dataclass
class SparseIR:
    """The folder's IR with pruneofa's SparseLinear op and the kernels library that defines the op."""

    files: list[Path]  # openvino_model_sparse.xml, .bin
    library: Path


def sparse_ir(path: Path, files: dict[str, Path], format: str, mode: str) -> SparseIR | None:
    """What ``--sparse-kernels`` asks for, checked before anything is written: the sparse IR and the library
    to ship (OVMS with ``auto`` where the folder has the IR, or ``on``), or None for the standard model."""
    have_xml, have_bin = OPENVINO_SPARSE_XML in files, OPENVINO_SPARSE_BIN in files
    if mode == "off":
        return None
    if format != "ovms":
        if mode == "on":
            raise InputError(
                "--sparse-kernels on ships pruneofa's kernels to OpenVINO Model Server (its --cpu_extension); "
                f"use it with --format ovms (--format {format} packages the standard model)"
            )
        return None
    if have_xml != have_bin:
        present, absent = (
            (OPENVINO_SPARSE_XML, OPENVINO_SPARSE_BIN)
            if have_xml
            else (OPENVINO_SPARSE_BIN, OPENVINO_SPARSE_XML)
        )
        raise InputError(
            f"{path} has {present} but not {absent}; re-export with 'pruneofa export --sparse-ir', or pass "
            "--sparse-kernels off to package the standard IR"
        )
    if not have_xml:
        if mode == "on":
            raise InputError(
                f"{path} has no {OPENVINO_SPARSE_XML} (the IR with pruneofa's sparse op); write it with "
                "'pruneofa export MODEL --target openvino --sparse-ir', or pass --sparse-kernels off"
            )
        return None
    import pruneofa.kernels as kernels

    library = kernels.library_path()
    if library is None:
        raise InputError(
            f"{path} has a sparse IR ({OPENVINO_SPARSE_XML}), which needs pruneofa's kernels library, and "
            "the library is not available here (no C++ compiler, or a failed build: see the warning above); "
            "run 'python -m pruneofa.kernels.build', or pass --sparse-kernels off to package the standard IR"
        )
    return SparseIR([files[OPENVINO_SPARSE_XML], files[OPENVINO_SPARSE_BIN]], library)


def _openvino_version() -> str:
    import openvino

    return openvino.get_version() if hasattr(openvino, "get_version") else openvino.__version__


def ship_kernels(staging: Path, sparse: SparseIR) -> dict[str, Any]:
    """Copy the kernels library to ``extensions/`` and record what it was built against (the packaged
    model is then run once with that copy: :func:`.ir_checks.probe`)."""
    from pruneofa.kernels.rewrite import OP_TYPES, OPSET

    extensions = staging / EXTENSIONS_DIR
    extensions.mkdir()
    library = extensions / sparse.library.name
    shutil.copyfile(sparse.library, library)
    record = {
        "library": sparse.library.name,
        "sha256": sha256_file(library),
        "operations": [f"{OPSET}::{op}" for op in OP_TYPES],
        "openvino_version": _openvino_version(),
        "note": "the library must match the OpenVINO version inside the OVMS image: rebuild it there "
        "(python -m pruneofa.kernels.build) if that version differs",
        "ovms_argument": f"--cpu_extension {OVMS_MOUNT}/{EXTENSIONS_DIR}/{sparse.library.name}",
    }
    (extensions / KERNELS_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
