"""The IR a repository ships is the one the folder's manifest describes, and it is readable.

Checked before anything is written, from the files alone (no OpenVINO):

* the ``.xml`` is read with a bound (:data:`MAX_IR_XML_BYTES`) and parsed; a truncated or malformed file
  is one line naming it, never a parser traceback;
* every constant's ``offset + size`` lies inside the ``.bin`` (a truncated weights file);
* each file's size equals the one the folder's ``pruneofa.json`` records (``export.files``), so a file
  swapped or cut after the stage that wrote (and ``validate`` that read) the folder is refused;
* the weights' precision matches the manifest's ``export.weight_format``: an INT8 folder's IR stores its
  Linear weights as 8-bit integer constants, a float folder's has none (an FP32 sparse IR copied into an
  ``-int8`` folder would otherwise ship under the INT8 name).

:mod:`.ir_probe` then runs the model once in a separate process (:func:`probe`)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import read_bounded
from pruneofa.core.manifest import Manifest

MAX_IR_XML_BYTES = 64 << 20  # a BERT-large IR's graph is a few MB; its weights are in the .bin
PROBE_TIMEOUT_S = 600
_INTEGER_8 = {"i8", "u8"}
_BYTES = {"f64": 8, "i64": 8, "u64": 8, "f32": 4, "i32": 4, "u32": 4, "f16": 2, "bf16": 2, "i16": 2, "u16": 2}
_REEXPORT = "re-run the stage that wrote the folder (pruneofa export / calibrate)"


@dataclass
class IRSummary:
    """What an IR's graph says about its weights: its constants by element type (those with more than one
    element) and the bytes of ``.bin`` they address."""

    constants: dict[str, int]
    bin_bytes_used: int

    @property
    def integer8(self) -> int:
        return sum(n for t, n in self.constants.items() if t in _INTEGER_8)


def read_ir(xml: Path, bin_path: Path) -> IRSummary:
    """Parse ``xml`` (bounded) and check every constant against ``bin_path``'s size."""
    data = read_bounded(xml, MAX_IR_XML_BYTES, what="IR", fix=_REEXPORT)
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as err:
        raise InputError(f"{xml} is not a readable OpenVINO IR (XML: {err}); {_REEXPORT}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise InputError(f"{xml} is not an OpenVINO IR (no <net> with <layers>); {_REEXPORT}")
    bin_size = bin_path.stat().st_size
    constants: dict[str, int] = {}
    used = 0
    for layer in root.iter("layer"):
        if layer.get("type") != "Const":
            continue
        attributes = layer.find("data")
        if attributes is None:
            raise InputError(f"{xml}: constant {layer.get('name')!r} has no data; {_REEXPORT}")
        element = attributes.get("element_type", "")
        try:
            offset, size = int(attributes.get("offset", "")), int(attributes.get("size", ""))
            shape = [int(d) for d in attributes.get("shape", "").split(",") if d.strip()]
        except ValueError:
            raise InputError(
                f"{xml}: constant {layer.get('name')!r} has a malformed offset, size or shape; {_REEXPORT}"
            ) from None
        if offset < 0 or size < 0 or offset + size > bin_size:
            raise InputError(
                f"{xml}: constant {layer.get('name')!r} reads bytes {offset}..{offset + size} of "
                f"{bin_path.name}, which has {bin_size} (truncated or not this IR's weights); {_REEXPORT}"
            )
        elements = 1
        for d in shape:
            elements *= d
        if element in _BYTES and size != elements * _BYTES[element]:
            raise InputError(
                f"{xml}: constant {layer.get('name')!r} of shape {shape} ({element}) has {size} bytes; "
                f"{_REEXPORT}"
            )
        used = max(used, offset + size)
        if elements > 1:
            constants[element] = constants.get(element, 0) + 1
    return IRSummary(constants, used)


def check_recorded_sizes(files: list[Path], manifest: Manifest | None) -> None:
    """Refuse a model file whose size is not the one the folder's manifest records for it."""
    recorded = manifest.export.files if manifest is not None and manifest.export is not None else {}
    for path in files:
        expected = recorded.get(path.name)
        if expected is not None and path.stat().st_size != expected:
            raise InputError(
                f"{path} has {path.stat().st_size} bytes, the folder's pruneofa.json records {expected}: it "
                "changed after the stage that wrote the folder (and after validate read it); "
                f"{_REEXPORT}, or restore the file"
            )


def check_precision(xml: Path, summary: IRSummary, manifest: Manifest | None) -> None:
    """Refuse an IR whose weight precision is not the manifest's ``export.weight_format``."""
    if manifest is None or manifest.export is None:
        return
    expected = manifest.export.weight_format
    if expected == "int8" and summary.integer8 == 0:
        raise InputError(
            f"{xml} has no 8-bit integer weights ({summary.constants.get('f32', 0)} FP32 constants) but the "
            "folder's pruneofa.json says INT8: it is not the model that was calibrated and validated; "
            "regenerate it from this folder's INT8 model (pruneofa calibrate) or package with "
            "--sparse-kernels off"
        )
    if expected != "int8" and summary.integer8 > 0:
        raise InputError(
            f"{xml} has {summary.integer8} 8-bit integer weight constants but the folder's pruneofa.json says "
            f"{expected.upper()}: it is not the model that was exported and validated; {_REEXPORT}"
        )


def check_ir(xml: Path, bin_path: Path, manifest: Manifest | None) -> IRSummary:
    """All the file checks above, for the IR about to be shipped."""
    check_recorded_sizes([xml, bin_path], manifest)
    summary = read_ir(xml, bin_path)
    check_precision(xml, summary, manifest)
    return summary


def probe(xml: Path, *, library: Path | None, reference: Path | None, shipped_as: str) -> dict:
    """Run :mod:`.ir_probe` on ``xml`` in a child process: read, compile and one inference in a fresh
    OpenVINO core (with ``library`` added, as OVMS's ``--cpu_extension`` does), and with ``reference``
    (the folder's dense IR) the sparse op's weights compared with it. A refusal, a crash (a signal) or a
    hang is one :class:`InputError`; returns what the child reported."""
    request = {"xml": str(xml), "library": str(library) if library else None}
    request["reference"] = str(reference) if reference else None
    try:
        child = subprocess.run(
            [sys.executable, "-m", "pruneofa.deploy.packaging.ir_probe", json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{shipped_as}: one inference did not finish within {PROBE_TIMEOUT_S} s; not packaged "
            f"(nothing written); {_REEXPORT}"
        ) from None
    if child.returncode == 0:
        return json.loads(child.stdout.strip().splitlines()[-1])
    lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
    if child.returncode < 0:
        import signal

        reason = f"OpenVINO crashed on it ({signal.Signals(-child.returncode).name})"
    else:
        reason = lines[-1] if lines else f"exit status {child.returncode}"
    raise InputError(
        f"{shipped_as} fails when run once ({reason}); not packaged (nothing written): {_REEXPORT}"
    )
