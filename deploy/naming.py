"""The name a server gives an exported folder's model: one helper for ``pruneofa serve`` (its v2 URLs) and
``pruneofa package`` (OVMS/Triton repositories, archives), so that neither imports the other for a name."""

from __future__ import annotations

import re
from pathlib import Path

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import read_manifest


def url_safe_name(text: str) -> str:
    """``text`` as a model name every server and URL accepts: runs of other characters become ``-``."""
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-_.")[:200].rstrip("-_.")
    return name or "model"


def source_model_name(location: str) -> str:
    """What a stage's source model is called: the embedded default by its own name (all-MiniLM-L6-v2, not
    the folder inside the package that ships it), a hub id or a folder by its last part."""
    from pruneofa.core import modelio

    try:
        default = modelio.resolve_model_source(None)
        if Path(location).resolve() == Path(default.location).resolve():
            return default.display_name
    except (InputError, OSError):  # the package that ships the default is not installed
        pass
    return location.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def default_model_name(folder: str | Path) -> str:
    """The name a server gives the model of an exported folder, the same for ``pruneofa serve`` (its v2
    URLs) and ``pruneofa package`` (the OVMS/Triton repository): from the folder's ``pruneofa.json``, the
    model the export read, the target and, unless FP32, the precision (``all-MiniLM-L6-v2-openvino-int8``
    for the calibrated export of the embedded model), made URL-safe. A folder without a manifest (or one
    that was not exported) keeps its own name. The name does not depend on where the folder sits
    (``exports/x/openvino-int8`` of a two-target export is not served as ``openvino-int8``)."""
    path = Path(folder).expanduser()
    manifest = read_manifest(path)
    if manifest is None or manifest.export is None:
        return url_safe_name(path.resolve().name)
    exports = [
        entry.source for entry in (*manifest.lineage, manifest.as_lineage()) if entry.stage == "export"
    ]
    source = exports[-1] if exports else manifest.source.model
    parts = [url_safe_name(source_model_name(source)), manifest.export.target]
    if manifest.export.weight_format != "fp32":
        parts.append(manifest.export.weight_format)
    return url_safe_name("-".join(parts))
