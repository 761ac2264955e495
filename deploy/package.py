"""``pruneofa package``: an exported folder as an OpenVINO Model Server or Triton model repository, or as a
compressed archive in which pruned weights cost (almost) nothing.

Repositories (both servers load them as they are, from the directory given to ``--model_repository`` /
``--config_path``):

* ``ovms``: ``config.json`` (``model_config_list`` with the model's name, its base path relative to the
  config file, CPU, dynamic ``shape`` for every input) and ``NAME/1/model.xml|bin`` (or ``model.onnx``).
* ``triton``: ``NAME/config.pbtxt`` (backend ``openvino`` for an IR folder, ``onnxruntime`` for ONNX;
  ``max_batch_size`` with the batch axis left out of ``dims``, the sequence axis ``-1``, dynamic batching,
  CPU instances) and ``NAME/1/model.xml|bin`` or ``NAME/1/model.onnx``.

Both carry ``tokenizer/`` (the Hugging Face tokenizer files and config, and the OpenVINO tokenizer model
where the folder has one) so that a client can turn text into the ``input_ids`` the servers expect.

Archive (``NAME.tar.xz``): every file of the folder; large binaries (weights) are stored as a bitmap of
their non-zero bytes plus those bytes, so a zero weight costs about one bit per byte before xz and a
non-zero weight its own bytes: the size follows the number of non-zeros. ``unpack_archive`` restores the
folder byte for byte (SHA-256 checked).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    Manifest,
    SourceInfo,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.core.progress import Progress
from pruneofa.core.runtime import MODEL_FILES, OPENVINO_TOKENIZER_XML
from pruneofa.core.runtime import model_files as model_files_of
from pruneofa.deploy.config import PackageConfig

ARCHIVE_INDEX = "pruneofa-archive.json"
ARCHIVE_FORMAT = "pruneofa-sparse-archive"
_SPARSE_SUFFIXES = (".bin", ".onnx", ".safetensors")
_SPARSE_MIN_BYTES = 64 * 1024
_TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    OPENVINO_TOKENIZER_XML,
    "openvino_tokenizer.bin",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TRITON_TYPES = {"i64": "TYPE_INT64", "i32": "TYPE_INT32", "f32": "TYPE_FP32", "f16": "TYPE_FP16"}


@dataclass
class PackageResult:
    output: Path
    format: str
    files: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def _signature(model_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs of a model file: name, element type, shape with -1 for dynamic axes."""
    import openvino as ov

    model = ov.Core().read_model(str(model_path))

    def describe(ports) -> list[dict[str, Any]]:
        rows = []
        for port in ports:
            shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
            rows.append(
                {"name": port.get_any_name(), "type": port.get_element_type().get_type_name(), "shape": shape}
            )
        return rows

    return describe(model.inputs), describe(model.outputs)


def _copy_tokenizer(folder: Path, target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)
            copied.append(name)
    return copied


def _package_manifest(folder: Path, stage_note: dict[str, float], command: list[str] | None) -> Manifest:
    source = read_manifest(folder)
    return Manifest(
        stage="package",
        command=command or ["pruneofa.deploy.package_model", str(folder)],
        created_at=now_utc(),
        versions=library_versions(),
        source=SourceInfo(
            model=str(folder),
            model_type=source.source.model_type if source else "unknown",
            architecture=source.source.architecture if source else None,
            file_sha256=hash_model_files(folder),
        ),
        lineage=(source.lineage + [source.as_lineage()]) if source else [],
        export=source.export if source else None,
        shrink=source.shrink if source else None,
        sparsity=source.sparsity if source else None,
        calibration=source.calibration if source else None,
        metrics=stage_note,
    )


def ovms_config(name: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    shape = {i["name"]: "(" + ",".join(str(d) for d in i["shape"]) + ")" for i in inputs}
    return {
        "model_config_list": [
            {
                "config": {
                    "name": name,
                    "base_path": name,
                    "target_device": "CPU",
                    "shape": shape,
                    "plugin_config": {"PERFORMANCE_HINT": "THROUGHPUT"},
                }
            }
        ]
    }


def triton_config(
    name: str, backend: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], max_batch: int
) -> str:
    def tensor(row: dict[str, Any]) -> str:
        data_type = _TRITON_TYPES.get(row["type"])
        if data_type is None:
            raise InputError(
                f"tensor {row['name']} has type {row['type']}, which this Triton layout does not map"
            )
        dims = ", ".join(str(d) for d in row["shape"][1:])  # the batch axis is implied by max_batch_size
        return f'  {{\n    name: "{row["name"]}"\n    data_type: {data_type}\n    dims: [ {dims} ]\n  }}'

    return (
        f'name: "{name}"\n'
        f'backend: "{backend}"\n'
        f"max_batch_size: {max_batch}\n"
        "input [\n" + ",\n".join(tensor(i) for i in inputs) + "\n]\n"
        "output [\n" + ",\n".join(tensor(o) for o in outputs) + "\n]\n"
        "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n"
    )


def _relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def package_model(
    folder: str | Path,
    config: PackageConfig,
    *,
    command: list[str] | None = None,
    quiet: bool = False,
) -> PackageResult:
    """Write ``folder`` as an ``ovms`` or ``triton`` repository or an ``archive``; format ``folder``
    restores an archive (then ``folder`` is the ``.tar.xz`` file). Output is written atomically."""
    path = Path(folder).expanduser().resolve()
    format, output, name, overwrite = config.format, config.output, config.name, config.overwrite
    max_batch_size = config.max_batch_size
    if format == "folder":
        target = Path(output) if output else path.parent / path.name.removesuffix(".tar.xz")
        return unpack_archive(path, target, overwrite=overwrite, quiet=quiet)
    if not path.is_dir():
        raise InputError(
            f"{path} is not a folder; give a folder written by 'pruneofa export' or 'pruneofa calibrate'"
        )
    model_name = name or re.sub(r"[^A-Za-z0-9_.\-]", "_", path.name)
    if not _NAME.match(model_name):
        raise InputError(
            f"model name {model_name!r} is not usable by the servers; pass --name with letters, digits, _ . -"
        )
    if not 1 <= max_batch_size <= 4096:
        raise InputError("--max-batch-size must be between 1 and 4096")
    kind, model_files = model_files_of(path)
    target = Path(output) if output else path.parent / f"{path.name}-{format}"
    check_output_dir(target, overwrite=overwrite)
    started = time.perf_counter()
    with atomic_output_dir(target, overwrite=overwrite) as staging:
        if format == "archive":
            summary = _write_archive(path, staging / f"{model_name}.tar.xz", quiet)
        else:
            summary = _write_repository(path, staging, format, model_name, kind, model_files, max_batch_size)
        summary["wall_time_s"] = round(time.perf_counter() - started, 2)
        metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
        write_manifest(staging, _package_manifest(path, metrics, command))
        files = _relative_files(staging)
    Progress(quiet).say(f"package ({format}) written to {target}: " + ", ".join(files))
    return PackageResult(target, format, files, summary)


def _write_repository(
    folder: Path, staging: Path, format: str, name: str, kind: str, model_files: list[Path], max_batch: int
) -> dict[str, Any]:
    version = staging / name / "1"
    version.mkdir(parents=True)
    if kind == "openvino":
        shutil.copy2(model_files[0], version / "model.xml")
        shutil.copy2(model_files[1], version / "model.bin")
        model_path = version / "model.xml"
    else:
        shutil.copy2(model_files[0], version / "model.onnx")
        model_path = version / "model.onnx"
    inputs, outputs = _signature(model_path)
    if format == "ovms":
        (staging / "config.json").write_text(
            json.dumps(ovms_config(name, inputs), indent=2) + "\n", encoding="utf-8"
        )
    else:
        backend = "openvino" if kind == "openvino" else "onnxruntime"
        (staging / name / "config.pbtxt").write_text(
            triton_config(name, backend, inputs, outputs, max_batch), encoding="utf-8"
        )
    tokenizer = _copy_tokenizer(folder, staging / "tokenizer")
    return {
        "model_bytes": sum(p.stat().st_size for p in version.iterdir()),
        "tokenizer_files": len(tokenizer),
    }


def _sparse_encode(data: bytes) -> tuple[bytes, bytes]:
    array = np.frombuffer(data, dtype=np.uint8)
    nonzero = array != 0
    return np.packbits(nonzero).tobytes(), array[nonzero].tobytes()


def _sparse_decode(mask: bytes, values: bytes, size: int) -> bytes:
    nonzero = np.unpackbits(np.frombuffer(mask, dtype=np.uint8), count=size).astype(bool)
    restored = np.zeros(size, dtype=np.uint8)
    restored[nonzero] = np.frombuffer(values, dtype=np.uint8)
    return restored.tobytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _dense_fp32_bytes(folder: Path, model_bytes: int) -> tuple[int, str]:
    manifest = read_manifest(folder)
    if manifest and manifest.calibration is not None:
        return manifest.calibration.fp32_bytes, "the FP32 export this INT8 folder was calibrated from"
    if manifest and manifest.export is not None and manifest.export.weight_format == "fp16":
        return model_bytes * 2, "twice this FP16 folder's model files"
    return model_bytes, "this folder's own FP32 model files"


def _write_archive(folder: Path, archive: Path, quiet: bool) -> dict[str, Any]:
    entries, total, nonzero_bytes, sparse_bytes = [], 0, 0, 0
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if any(p.is_dir() for p in folder.iterdir()):
        raise InputError(f"{folder} has sub-folders; the archive holds a flat model folder (move them out)")
    with tarfile.open(archive, "w:xz", preset=6) as tar:
        for path in files:
            data = path.read_bytes()
            total += len(data)
            entry = {"name": path.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            if path.suffix in _SPARSE_SUFFIXES and len(data) >= _SPARSE_MIN_BYTES:
                Progress(quiet).say(f"archiving {path.name} ({len(data) / 1e6:.1f} MB, non-zero bytes only)")
                mask, values = _sparse_encode(data)
                _add(tar, f"sparse/{path.name}.mask", mask)
                _add(tar, f"sparse/{path.name}.values", values)
                entry["encoding"] = "nonzero-bytes"
                nonzero_bytes += len(values)
                sparse_bytes += len(data)
            else:
                _add(tar, f"files/{path.name}", data)
                entry["encoding"] = "raw"
            entries.append(entry)
        index = {"format": ARCHIVE_FORMAT, "version": 1, "files": entries}
        _add(tar, ARCHIVE_INDEX, json.dumps(index, indent=2).encode("utf-8"))
    model_bytes = sum(
        p.stat().st_size for p in files if p.name in MODEL_FILES["openvino"] + MODEL_FILES["onnx"]
    )
    dense, dense_what = _dense_fp32_bytes(folder, model_bytes)
    size = archive.stat().st_size
    return {
        "archive_bytes": size,
        "folder_bytes": total,
        "model_bytes": model_bytes,
        "dense_fp32_bytes": dense,
        "dense_fp32_is": dense_what,
        "ratio_to_dense_fp32": round(size / max(dense, 1), 4),
        "ratio_to_folder": round(size / max(total, 1), 4),
        "nonzero_byte_share": round(nonzero_bytes / max(sparse_bytes, 1), 4),
    }


def unpack_archive(
    archive: str | Path, output: str | Path, *, overwrite: bool = False, quiet: bool = False
) -> PackageResult:
    """Restore the folder an archive was made from; every file is checked against its SHA-256."""
    path = Path(archive).expanduser()
    if not path.is_file():
        raise InputError(
            f"{path} is not a file; give a .tar.xz written by 'pruneofa package --format archive'"
        )
    try:
        tar = tarfile.open(path, "r:xz")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InputError(
            f"{path} is not a readable .tar.xz archive ({err}); re-create it with pruneofa package"
        ) from err
    with tar, atomic_output_dir(Path(output), overwrite=overwrite) as staging:

        def member(name: str) -> bytes:
            handle = tar.extractfile(name) if name in tar.getnames() else None
            if handle is None:
                raise InputError(f"{path} lacks {name}; it is not a complete pruneofa archive")
            return handle.read()

        try:
            index = json.loads(member(ARCHIVE_INDEX))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: {ARCHIVE_INDEX} is not JSON; the archive is damaged") from err
        if index.get("format") != ARCHIVE_FORMAT or index.get("version") != 1:
            raise InputError(f"{path} is not a pruneofa archive (format {index.get('format')!r})")
        restored = []
        for entry in index["files"]:
            name = entry["name"]
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise InputError(f"{path} names a file outside the folder ({name!r}); refusing to unpack it")
            if entry["encoding"] == "nonzero-bytes":
                data = _sparse_decode(
                    member(f"sparse/{name}.mask"), member(f"sparse/{name}.values"), entry["size"]
                )
            else:
                data = member(f"files/{name}")
            if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise InputError(
                    f"{path}: {name} does not match its recorded SHA-256; the archive is damaged"
                )
            (staging / name).write_bytes(data)
            restored.append(name)
    target = Path(output).expanduser().resolve()
    Progress(quiet).say(f"restored {len(restored)} files to {target} (SHA-256 checked)")
    return PackageResult(target, "folder", sorted(restored), {"files": len(restored)})
