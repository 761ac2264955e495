"""Writing an archive: the index first, then the optional signature, then each file, weights as a bitmap
of their non-zero bytes plus those bytes (the format: :mod:`.archive_format`)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import Manifest
from pruneofa.core.progress import Progress
from pruneofa.core.runtime import MODEL_FILES
from pruneofa.deploy.packaging.archive_format import (
    ARCHIVE_FORMAT,
    ARCHIVE_INDEX,
    ARCHIVE_SIGNATURE,
    ARCHIVE_VERSION,
    CHUNK,
    member_name,
)
from pruneofa.deploy.packaging.signing import sign_index

_SPARSE_SUFFIXES = (".bin", ".onnx", ".safetensors")
_SPARSE_MIN_BYTES = 64 * 1024


def _sparse_encode(data: bytes) -> tuple[bytes, bytes]:
    array = np.frombuffer(data, dtype=np.uint8)
    nonzero = array != 0
    return np.packbits(nonzero).tobytes(), array[nonzero].tobytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _dense_fp32_bytes(source: Manifest | None, model_bytes: int) -> tuple[int, str]:
    """The size the model would have as dense FP32 files, and what that figure is (for the ratio)."""
    if source and source.calibration is not None:
        return source.calibration.fp32_bytes, "the FP32 export this INT8 folder was calibrated from"
    if source and source.export is not None and source.export.weight_format == "fp16":
        return model_bytes * 2, "twice this FP16 folder's model files"
    if source and source.export is not None and source.export.weight_format == "int8" and source.sparsity:
        # A QAT export: INT8 from training, no FP32 export in its lineage. Its own file is INT8, so the
        # FP32 size is 4 bytes for each weight the export accounted (its sparsity table covers them all).
        weights = source.sparsity.total_numel
        return (
            4 * weights,
            f"4 bytes for each of this INT8 (QAT) model's {weights:,} weights, as FP32 stores them",
        )
    return model_bytes, "this folder's own FP32 model files"


def _is_sparse(name: str, size: int) -> bool:
    return Path(name).suffix in _SPARSE_SUFFIXES and size >= _SPARSE_MIN_BYTES


def _describe_file(name: str, path: Path) -> dict[str, Any]:
    """An index entry, read in chunks: size, SHA-256 and (for weights) the count of non-zero bytes."""
    digest, size, nonzero = hashlib.sha256(), 0, 0
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            size += len(block)
            nonzero += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8)))
    entry: dict[str, Any] = {"name": name, "size": size, "sha256": digest.hexdigest(), "encoding": "raw"}
    if _is_sparse(name, size):
        entry.update(encoding="nonzero-bytes", nonzero=nonzero)
    return entry


def write_archive(
    files: dict[str, Path], source: Manifest | None, archive: Path, signing_key: Any, quiet: bool
) -> dict[str, Any]:
    """Write ``files`` to ``archive`` (signed where ``signing_key`` is given); returns the run's summary:
    sizes, and the archive's size against the dense FP32 model and against the folder."""
    entries = [_describe_file(name, path) for name, path in sorted(files.items())]
    index = json.dumps({"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "files": entries}, indent=2)
    index_bytes = index.encode("utf-8")
    nonzero_bytes = sparse_bytes = 0
    with tarfile.open(archive, "w:xz", preset=6) as tar:
        _add(tar, ARCHIVE_INDEX, index_bytes)
        if signing_key is not None:
            _add(tar, ARCHIVE_SIGNATURE, sign_index(signing_key, index_bytes))
        for entry in entries:
            name, encoding = entry["name"], entry["encoding"]
            data = files[name].read_bytes()
            if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise InputError(f"{files[name]} changed while it was being archived; run the command again")
            if encoding == "nonzero-bytes":
                Progress(quiet).say(f"archiving {name} ({len(data) / 1e6:.1f} MB, non-zero bytes only)")
                mask, values = _sparse_encode(data)
                _add(tar, member_name(name, encoding, "mask"), mask)
                _add(tar, member_name(name, encoding, "values"), values)
                nonzero_bytes += len(values)
                sparse_bytes += len(data)
            else:
                _add(tar, member_name(name, encoding), data)
    model_bytes = sum(
        files[n].stat().st_size for n in files if n in MODEL_FILES["openvino"] + MODEL_FILES["onnx"]
    )
    dense, dense_what = _dense_fp32_bytes(source, model_bytes)
    size = archive.stat().st_size
    total = sum(entry["size"] for entry in entries)
    return {
        "archive_bytes": size,
        "folder_bytes": total,
        "model_bytes": model_bytes,
        "dense_fp32_bytes": dense,
        "dense_fp32_is": dense_what,
        "ratio_to_dense_fp32": round(size / max(dense, 1), 4),
        "ratio_to_folder": round(size / max(total, 1), 4),
        "nonzero_byte_share": round(nonzero_bytes / max(sparse_bytes, 1), 4),
        "signed": signing_key is not None,
    }
