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
where the folder has one) so that a client can turn text into the ``input_ids`` the servers expect. NAME is
the one ``pruneofa serve`` gives the model (:func:`default_model_name`: source model, target, precision).

A folder with a sparse IR (``openvino_model_sparse.xml``, from ``pruneofa export --sparse-ir``) becomes an
OVMS repository that serves it: the kernels library that defines pruneofa's op is copied to
``extensions/`` with a record of what it was built against, and ``README.md`` gives the start command with
OVMS's ``--cpu_extension`` (a server parameter; config.json has no key for it). The copy is checked to
read and compile the packaged model in a fresh OpenVINO core before anything moves into place.

Archive (``NAME.tar.xz``): every file of the folder; large binaries (weights) are stored as a bitmap of
their non-zero bytes plus those bytes, so a zero weight costs about one bit per byte before xz and a
non-zero weight its own bytes: the size follows the number of non-zeros. The index (names, sizes,
SHA-256) comes first, then an optional ed25519 signature of the index, then the data.

Packaging reads only the folder's own files: a link that points outside it is refused (or, with
``skip_outside_links``, left out), as are FIFOs and devices. Restoring treats the archive as hostile until
proven otherwise: every member header is checked (regular files with expected names only, declared sizes
within ``max_unpacked_bytes`` and equal to what the index says) before its data is decoded, metadata reads
are bounded, data is streamed to disk and stops at the declared size, every file is checked against its
SHA-256, and with ``verify`` the index must carry a valid signature of the given key. Any problem is one
line (exit 2) and nothing is left behind. The SHA-256 check is integrity (accidents); only the signature
is authenticity (someone who rewrites the weights can rewrite the index too).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pruneofa.core.errors import CheckFailed, InputError, last_line
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    MANIFEST_NAME,
    Manifest,
    SourceInfo,
    library_versions,
    now_utc,
    read_manifest,
    sha256_file,
    write_manifest,
)
from pruneofa.core.progress import Progress
from pruneofa.core.runtime import (
    MODEL_FILES,
    NOT_EXPORTED,
    ONNX_FILE,
    OPENVINO_BIN,
    OPENVINO_SPARSE_BIN,
    OPENVINO_SPARSE_XML,
    OPENVINO_TOKENIZER_XML,
    OPENVINO_XML,
)
from pruneofa.deploy.config import PackageConfig
from pruneofa.deploy.naming import default_model_name

ARCHIVE_INDEX = "pruneofa-archive.json"
ARCHIVE_SIGNATURE = "pruneofa-archive.sig"
ARCHIVE_FORMAT = "pruneofa-sparse-archive"
ARCHIVE_VERSION = 2  # 2: index (with non-zero counts) first, optional signature; 1: index last
SIGNATURE_CONTEXT = b"pruneofa-archive-index-v2\n"  # what is signed: this, then the index bytes
DEFAULT_MAX_UNPACKED_BYTES = 32 << 30
_SPARSE_SUFFIXES = (".bin", ".onnx", ".safetensors")
_SPARSE_MIN_BYTES = 64 * 1024
_CHUNK = 8 << 20  # bytes decoded per step (a multiple of 8: one mask byte covers 8 bytes)
_INDEX_LIMIT = 16 << 20
_SIGNATURE_LIMIT = 4096
_MAX_MEMBERS = 10_000
_METADATA_READ_LIMIT = 32 << 20  # no legitimate single read of the tar stream is larger
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
EXTENSIONS_DIR = "extensions"  # an OVMS repository's kernels library, beside config.json
KERNELS_RECORD = "pruneofa_kernels.json"  # what the library is and was built against
OVMS_MOUNT = "/models"  # where the documented docker command mounts the repository
_TRITON_TYPES = {"i64": "TYPE_INT64", "i32": "TYPE_INT32", "f32": "TYPE_FP32", "f16": "TYPE_FP16"}


@dataclass
class PackageResult:
    output: Path
    format: str
    files: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


# --- the folder's own files ----------------------------------------------------------------------------


def folder_files(folder: Path, *, skip_outside_links: bool = False) -> dict[str, Path]:
    """The folder's top-level regular files, name → path to read; sub-folders are left to the caller.

    A link is followed only where it resolves inside the folder: one pointing elsewhere would put that
    file's contents (anything the user can read) into an archive or a repository that is then shipped.
    It is refused, or with ``skip_outside_links`` left out. FIFOs, sockets and devices are refused (reading
    a FIFO blocks for ever)."""
    root = folder.resolve()
    files: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            target = entry.resolve()
            if not target.is_relative_to(root) or not target.exists():
                if skip_outside_links:
                    continue
                raise InputError(
                    f"{entry} is a link to {target}, outside {root}; packaging copies only the folder's own "
                    "files: replace the link with the file, or pass --skip-outside-links to leave it out"
                )
        if entry.is_dir():
            continue
        if not entry.is_file():
            raise InputError(
                f"{entry} is not a regular file (a FIFO, socket or device); move it out of {root}"
            )
        files[entry.name] = entry.resolve() if entry.is_symlink() else entry
    return files


def _subfolders(folder: Path) -> list[Path]:
    """Real sub-folders and links to folders inside ``folder`` (links out were refused or skipped)."""
    root = folder.resolve()
    return [p for p in folder.iterdir() if p.is_dir() and p.resolve().is_relative_to(root)]


def _model_kind(folder: Path, files: dict[str, Path]) -> tuple[str, list[Path]]:
    if OPENVINO_XML in files and OPENVINO_BIN in files:
        return "openvino", [files[OPENVINO_XML], files[OPENVINO_BIN]]
    if ONNX_FILE in files:
        return "onnx", [files[ONNX_FILE]]
    raise InputError(f"{folder} has no {OPENVINO_XML}/.bin or {ONNX_FILE}; {NOT_EXPORTED}")


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


def _copy_tokenizer(files: dict[str, Path], target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in _TOKENIZER_FILES:
        if name in files:
            shutil.copyfile(files[name], target / name)
            copied.append(name)
    return copied


def _package_manifest(
    folder: Path,
    source: Manifest | None,
    files: dict[str, Path],
    stage_note: dict[str, float],
    command: list[str] | None,
) -> Manifest:
    return Manifest(
        stage="package",
        command=command or ["pruneofa.deploy.package_model", str(folder)],
        created_at=now_utc(),
        versions=library_versions(),
        source=SourceInfo(
            model=str(folder),
            model_type=source.source.model_type if source else "unknown",
            architecture=source.source.architecture if source else None,
            file_sha256={name: sha256_file(path) for name, path in files.items()},
        ),
        lineage=(source.lineage + [source.as_lineage()]) if source else [],
        export=source.export if source else None,
        shrink=source.shrink if source else None,
        sparsity=source.sparsity if source else None,
        calibration=source.calibration if source else None,
        metrics=stage_note,
    )


def ovms_config(name: str, inputs: list[dict[str, Any]], *, f32: bool = False) -> dict[str, Any]:
    """``config.json``; ``f32``: FP32 inference precision (the sparse op takes FP32 activations, and a CPU
    with bf16 or AMX would otherwise run the rest of the model in bf16)."""
    shape = {i["name"]: "(" + ",".join(str(d) for d in i["shape"]) + ")" for i in inputs}
    plugin_config = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if f32:
        plugin_config["INFERENCE_PRECISION_HINT"] = "f32"
    return {
        "model_config_list": [
            {
                "config": {
                    "name": name,
                    "base_path": name,
                    "target_device": "CPU",
                    "shape": shape,
                    "plugin_config": plugin_config,
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
    if config.sign is not None and format != "archive":
        raise InputError("--sign signs an archive; use it with --format archive")
    if config.verify is not None and format != "folder":
        raise InputError("--verify checks an archive being restored; use it with --format folder")
    if format == "folder":
        target = Path(output) if output else path.parent / path.name.removesuffix(".tar.xz")
        return unpack_archive(
            path,
            target,
            overwrite=overwrite,
            quiet=quiet,
            verify=config.verify,
            max_unpacked_bytes=config.max_unpacked_bytes,
        )
    if not path.is_dir():
        raise InputError(
            f"{path} is not a folder; give a folder written by 'pruneofa export' or 'pruneofa calibrate'"
        )
    if format == "archive":  # restored beside it under the same name, by default
        model_name = name or re.sub(r"[^A-Za-z0-9_.\-]", "_", path.name)
    else:  # the name pruneofa serve gives the model too
        model_name = name or default_model_name(path)
    if not _NAME.match(model_name):
        raise InputError(
            f"model name {model_name!r} is not usable by the servers; pass --name with letters, digits, _ . -"
        )
    if not 1 <= config.max_batch_size <= 4096:
        raise InputError("--max-batch-size must be between 1 and 4096")
    signing_key = load_private_key(config.sign) if config.sign is not None else None
    files = folder_files(path, skip_outside_links=config.skip_outside_links)
    kind, model_files = _model_kind(path, files)
    source = read_manifest(path) if MANIFEST_NAME in files else None
    sparse = _sparse_ir(path, files, format, config.sparse_kernels)
    target = Path(output) if output else path.parent / f"{path.name}-{format}"
    check_output_dir(target, overwrite=overwrite)
    started = time.perf_counter()
    with atomic_output_dir(target, overwrite=overwrite) as staging:
        if format == "archive":
            if _subfolders(path):
                raise InputError(
                    f"{path} has sub-folders; the archive holds a flat model folder (move them out)"
                )
            summary = _write_archive(files, source, staging / f"{model_name}.tar.xz", signing_key, quiet)
        else:
            summary = _write_repository(
                files, staging, format, model_name, kind, model_files, config.max_batch_size, sparse
            )
        summary["wall_time_s"] = round(time.perf_counter() - started, 2)
        metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
        write_manifest(staging, _package_manifest(path, source, files, metrics, command))
        written = _relative_files(staging)
    Progress(quiet).say(f"package ({format}) written to {target}: " + ", ".join(written))
    return PackageResult(target, format, written, summary)


@dataclass
class _SparseIR:
    """The folder's IR with pruneofa's SparseLinear op and the kernels library that defines the op."""

    files: list[Path]  # openvino_model_sparse.xml, .bin
    library: Path


def _sparse_ir(path: Path, files: dict[str, Path], format: str, mode: str) -> _SparseIR | None:
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
    from pruneofa import kernels

    library = kernels.library_path()
    if library is None:
        raise InputError(
            f"{path} has a sparse IR ({OPENVINO_SPARSE_XML}), which needs pruneofa's kernels library, and "
            "the library is not available here (no C++ compiler, or a failed build: see the warning above); "
            "run 'python -m pruneofa.kernels.build', or pass --sparse-kernels off to package the standard IR"
        )
    return _SparseIR([files[OPENVINO_SPARSE_XML], files[OPENVINO_SPARSE_BIN]], library)


def _openvino_version() -> str:
    import openvino

    return openvino.get_version() if hasattr(openvino, "get_version") else openvino.__version__


def _ship_kernels(staging: Path, sparse: _SparseIR, model_xml: Path) -> dict[str, Any]:
    """Copy the kernels library to ``extensions/``, record what it was built against, and check that an
    OpenVINO core which adds that copy (as OVMS's ``--cpu_extension`` does) reads and compiles the model."""
    import openvino as ov

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
    try:
        core = ov.Core()
        core.add_extension(str(library))
        core.compile_model(core.read_model(str(model_xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    except RuntimeError as err:
        raise CheckFailed(
            f"the packaged sparse IR does not load with the packaged kernels library ({last_line(err)}); "
            "re-export with 'pruneofa export --sparse-ir' using this pruneofa, or pass --sparse-kernels off"
        ) from err
    return record


def _release(version: str) -> str:
    """``2026.4.1`` of OpenVINO's ``2026.4.1-22982-e213a147257-releases/2026/4``."""
    return version.split("-", 1)[0]


def ovms_readme(name: str, record: dict[str, Any] | None) -> str:
    """How to start OpenVINO Model Server on the repository, and the URL of the model it serves."""
    if record:  # OVMS images are tagged by release (2026.4 carries OpenVINO 2026.4.x): the library's
        image = "openvino/model_server:" + ".".join(_release(record["openvino_version"]).split(".")[:2])
        extension = f" \\\n    {record['ovms_argument']}"
    else:
        image, extension = "openvino/model_server:latest", ""
    lines = [
        f"# OpenVINO Model Server repository: {name}",
        "",
        "```bash",
        f"docker run --rm -v $PWD:{OVMS_MOUNT}:ro -p 9000:9000 {image} \\",
        f"    --config_path {OVMS_MOUNT}/config.json --rest_port 9000{extension}",
        "```",
        "",
        f"KServe v2 REST: `POST localhost:9000/v2/models/{name}/infer` with the token tensors "
        "(`input_ids`, `attention_mask`, ...) that `tokenizer/` makes; `pruneofa serve` of the same folder "
        "serves the model under the same name and takes text.",
    ]
    if record:
        lines += [
            "",
            f"`{name}/1/model.xml` is the folder's sparse IR: its Linear layers are pruneofa's "
            f"{' and '.join(f'`{op}`' for op in record['operations'])} operations, defined by `{EXTENSIONS_DIR}/{record['library']}`, which OVMS "
            f"loads with `{record['ovms_argument'].split()[0]}` (a server setting, not part of config.json).",
            "",
            f"**The library was built against OpenVINO {_release(record['openvino_version'])} "
            f"({record['openvino_version']}) and must match the OpenVINO inside the OVMS image** (its ABI and "
            "`libopenvino.so` version; the image's `/ovms/bin/ovms --version` prints it): use the image of "
            "that release, or rebuild the library inside the image with `python -m pruneofa.kernels.build` (or "
            "CMake, docs/kernels.md) and replace the file. Without the extension OVMS cannot read this model; "
            "package with `--sparse-kernels off` for the standard IR.",
        ]
    return "\n".join(lines) + "\n"


def _write_repository(
    files: dict[str, Path],
    staging: Path,
    format: str,
    name: str,
    kind: str,
    model_files: list[Path],
    max_batch: int,
    sparse: _SparseIR | None = None,
) -> dict[str, Any]:
    version = staging / name / "1"
    version.mkdir(parents=True)
    record = None
    if sparse is not None:
        shutil.copyfile(sparse.files[0], version / "model.xml")
        shutil.copyfile(sparse.files[1], version / "model.bin")
        record = _ship_kernels(staging, sparse, version / "model.xml")
    elif kind == "openvino":
        shutil.copyfile(model_files[0], version / "model.xml")
        shutil.copyfile(model_files[1], version / "model.bin")
    else:
        shutil.copyfile(model_files[0], version / "model.onnx")
    inputs, outputs = _signature(model_files[0])  # the standard model: the same inputs and outputs
    if format == "ovms":
        (staging / "config.json").write_text(
            json.dumps(ovms_config(name, inputs, f32=sparse is not None), indent=2) + "\n", encoding="utf-8"
        )
        (staging / "README.md").write_text(ovms_readme(name, record), encoding="utf-8")
    else:
        backend = "openvino" if kind == "openvino" else "onnxruntime"
        (staging / name / "config.pbtxt").write_text(
            triton_config(name, backend, inputs, outputs, max_batch), encoding="utf-8"
        )
    tokenizer = _copy_tokenizer(files, staging / "tokenizer")
    summary: dict[str, Any] = {
        "model_name": name,
        "model_bytes": sum(p.stat().st_size for p in version.iterdir()),
        "tokenizer_files": len(tokenizer),
    }
    if record is not None:
        summary.update(
            model_file=OPENVINO_SPARSE_XML,
            cpu_extension=f"{EXTENSIONS_DIR}/{record['library']}",
            kernels_openvino_version=record["openvino_version"],
        )
    return summary


# --- signatures ------------------------------------------------------------------------------------------


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise InputError("signing needs the 'cryptography' package; pip install cryptography") from err
    return serialization


def _key_bytes(path: Path, flag: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {flag} {path} ({err.strerror}); give the key file's path") from err
    if len(data) > 64 * 1024:
        raise InputError(f"{flag} {path} is not a key file (over 64 KiB)")
    return data


def load_private_key(path: Path) -> Any:
    """An ed25519 private key from a PEM (``openssl genpkey -algorithm ed25519``) or OpenSSH file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _crypto()
    data = _key_bytes(path, "--sign")
    loader = (
        serialization.load_ssh_private_key
        if b"OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError as err:
        raise InputError(
            f"--sign {path} is encrypted; give an unencrypted ed25519 key (and keep it safe)"
        ) from err
    except (ValueError, NotImplementedError) as err:
        raise InputError(
            f"--sign {path} is not a PEM or OpenSSH private key; make one with "
            "'openssl genpkey -algorithm ed25519 -out key.pem'"
        ) from err
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(
            f"--sign {path} is a {type(key).__name__.removeprefix('_')} key; give an ed25519 key"
        )
    return key


def load_public_key(path: Path) -> Any:
    """An ed25519 public key from a PEM (``openssl pkey -pubout``) or OpenSSH (``ssh-ed25519 …``) file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    serialization = _crypto()
    data = _key_bytes(path, "--verify")
    loader = (
        serialization.load_ssh_public_key
        if data.lstrip().startswith(b"ssh-")
        else serialization.load_pem_public_key
    )
    try:
        key = loader(data.strip())
    except (ValueError, NotImplementedError) as err:
        raise InputError(
            f"--verify {path} is not a PEM or OpenSSH public key; export it with "
            "'openssl pkey -in key.pem -pubout -out key.pub'"
        ) from err
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(
            f"--verify {path} is a {type(key).__name__.removeprefix('_')} key; give an ed25519 key"
        )
    return key


def _check_signature(
    archive: Path, public_key: Any, key_path: Path, index: bytes, signature: bytes | None
) -> None:
    from cryptography.exceptions import InvalidSignature

    if signature is None:
        raise InputError(
            f"{archive} is not signed, and --verify {key_path} asks for a signed archive; get a signed one "
            "(pruneofa package --sign KEY) from its author"
        )
    try:
        public_key.verify(signature, SIGNATURE_CONTEXT + index)
    except InvalidSignature:
        raise InputError(
            f"{archive}: the signature does not verify with {key_path}; the archive was changed after it was "
            "signed, or signed with another key: do not use it"
        ) from None


# --- writing an archive ----------------------------------------------------------------------------------


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
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
            nonzero += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8)))
    entry: dict[str, Any] = {"name": name, "size": size, "sha256": digest.hexdigest(), "encoding": "raw"}
    if _is_sparse(name, size):
        entry.update(encoding="nonzero-bytes", nonzero=nonzero)
    return entry


def _write_archive(
    files: dict[str, Path], source: Manifest | None, archive: Path, signing_key: Any, quiet: bool
) -> dict[str, Any]:
    entries = [_describe_file(name, path) for name, path in sorted(files.items())]
    index = json.dumps({"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "files": entries}, indent=2)
    index_bytes = index.encode("utf-8")
    nonzero_bytes = sparse_bytes = 0
    with tarfile.open(archive, "w:xz", preset=6) as tar:
        _add(tar, ARCHIVE_INDEX, index_bytes)
        if signing_key is not None:
            _add(tar, ARCHIVE_SIGNATURE, signing_key.sign(SIGNATURE_CONTEXT + index_bytes))
        for entry in entries:
            name = entry["name"]
            data = files[name].read_bytes()
            if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise InputError(f"{files[name]} changed while it was being archived; run the command again")
            if entry["encoding"] == "nonzero-bytes":
                Progress(quiet).say(f"archiving {name} ({len(data) / 1e6:.1f} MB, non-zero bytes only)")
                mask, values = _sparse_encode(data)
                _add(tar, f"sparse/{name}.mask", mask)
                _add(tar, f"sparse/{name}.values", values)
                nonzero_bytes += len(values)
                sparse_bytes += len(data)
            else:
                _add(tar, f"files/{name}", data)
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


# --- restoring an archive --------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    encoding: Literal["raw", "nonzero-bytes"]
    nonzero: int | None = Field(None, ge=0)


class _Index(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["pruneofa-sparse-archive"]
    version: Literal[1, 2]
    files: list[_Entry] = Field(max_length=_MAX_MEMBERS // 2)


class _BoundedReader(io.RawIOBase):
    """The decompressed tar stream, refusing any single read larger than legitimate metadata: tarfile
    reads a PAX or GNU long-name header in one call of its declared size, which a crafted archive sets
    to gigabytes. Data is read by the caller in chunks, so it never comes near the bound."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > _METADATA_READ_LIMIT:
            raise _Refused(f"a tar header declares {size} bytes of metadata")
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


class _Refused(Exception):
    """A problem found in an archive: becomes one :class:`InputError` line naming the archive."""


def _member_name(name: str, encoding: str, part: str = "") -> str:
    return f"files/{name}" if encoding == "raw" else f"sparse/{name}.{part}"


def _expected_members(entries: list[_Entry]) -> dict[str, int | None]:
    """Member name → the size its header must declare (``None``: known only from the mask, version 1)."""
    expected: dict[str, int | None] = {}
    for entry in entries:
        if entry.encoding == "raw":
            expected[_member_name(entry.name, "raw")] = entry.size
        else:
            expected[_member_name(entry.name, "sparse", "mask")] = (entry.size + 7) // 8
            expected[_member_name(entry.name, "sparse", "values")] = entry.nonzero
    return expected


def _parse_index(data: bytes, limit: int) -> tuple[list[_Entry], int]:
    if len(data) > _INDEX_LIMIT:
        raise _Refused(f"{ARCHIVE_INDEX} is over {_INDEX_LIMIT} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
        index = _Index.model_validate(raw)
    except RecursionError:
        raise _Refused(f"{ARCHIVE_INDEX} is nested too deeply to be an index") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _Refused(f"{ARCHIVE_INDEX} is not JSON ({err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise _Refused(f"{ARCHIVE_INDEX} is malformed at {where}: {first['msg']}") from None
    seen: set[str] = set()
    for entry in index.files:
        name = entry.name
        if "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or not name.isprintable():
            raise _Refused(f"the index names a file outside the folder ({name!r}); refusing to unpack it")
        if name.lower() in seen:
            raise _Refused(f"the index names {name!r} twice")
        seen.add(name.lower())
        if entry.size > limit:
            raise _Refused(f"{name} declares {entry.size} bytes, over --max-unpacked-bytes {limit}")
        if entry.encoding == "nonzero-bytes":
            if index.version >= 2 and entry.nonzero is None:
                raise _Refused(f"the index gives no non-zero count for {name}")
            if entry.nonzero is not None and entry.nonzero > entry.size:
                raise _Refused(f"the index gives {name} more non-zero bytes than bytes")
    total = sum(entry.size for entry in index.files)
    if total > limit:
        raise _Refused(f"its files add up to {total} bytes, over --max-unpacked-bytes {limit}")
    return index.files, index.version


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise _Refused(f"{member.name} declares {member.size} bytes, over its limit of {limit}")
    handle = tar.extractfile(member)
    data = handle.read(member.size) if handle is not None else b""
    if len(data) != member.size:
        raise _Refused(f"{member.name} is truncated")
    return data


@dataclass
class _Scan:
    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    index: bytes | None = None
    signature: bytes | None = None
    entries: list[_Entry] | None = None
    expected: dict[str, int | None] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # SHA-256 of each raw member, taken in passing
    version: int = 0


def _check_header(member: tarfile.TarInfo, scan: _Scan, limit: int, declared: int) -> int:
    """One member header, before a byte of its data is decoded; returns the running declared total."""
    name = member.name
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse is not None:
        kind = (
            "a link"
            if member.issym() or member.islnk()
            else "a folder"
            if member.isdir()
            else "a special file"
        )
        raise _Refused(f"member {name!r} is {kind}; a pruneofa archive holds regular files only")
    if name in scan.members:
        raise _Refused(f"member {name!r} appears twice")
    if len(scan.members) >= _MAX_MEMBERS:
        raise _Refused(f"it holds over {_MAX_MEMBERS} members")
    if member.size < 0 or member.size > limit:
        raise _Refused(f"member {name!r} declares {member.size} bytes, over --max-unpacked-bytes {limit}")
    declared += member.size
    if declared > 2 * limit + _INDEX_LIMIT:  # data members (mask + values ≤ 1.125 × size) and the index
        raise _Refused(f"its members declare {declared} bytes, over --max-unpacked-bytes {limit}")
    if scan.entries is not None and name not in (ARCHIVE_INDEX, ARCHIVE_SIGNATURE):
        if name not in scan.expected:
            raise _Refused(f"member {name!r} is not in its index")
        if scan.expected[name] is not None and scan.expected[name] != member.size:
            raise _Refused(f"member {name!r} declares {member.size} bytes, its index {scan.expected[name]}")
    elif not re.fullmatch(r"(files/[^/]+|sparse/[^/]+\.(mask|values)|pruneofa-archive\.(json|sig))", name):
        raise _Refused(f"member {name!r} is not part of a pruneofa archive")
    return declared


def _scan(tar: tarfile.TarFile, limit: int) -> _Scan:
    """Every member header, checked before moving past it (which decodes its data): regular files with the
    names and sizes the index allows. The index and signature are read as they come (version 2: first);
    files stored as they are are hashed in passing, so that a wrong one is refused before anything is
    written (a bomb of zeros never reaches the disk)."""
    scan, declared = _Scan(), 0
    while (member := tar.next()) is not None:
        declared = _check_header(member, scan, limit, declared)
        scan.members[member.name] = member
        scan.order.append(member.name)
        if member.name == ARCHIVE_INDEX:
            scan.index = _read_small(tar, member, _INDEX_LIMIT)
            scan.entries, scan.version = _parse_index(scan.index, limit)
            scan.expected = _expected_members(scan.entries)
            for seen in scan.order[:-1]:  # version 1: the data came first; check it now
                _check_known(seen, scan)
        elif member.name == ARCHIVE_SIGNATURE:
            scan.signature = _read_small(tar, member, _SIGNATURE_LIMIT)
        elif member.name.startswith("files/"):
            digest = hashlib.sha256()
            _copy_member(tar, member, None, digest)
            scan.digests[member.name] = digest.hexdigest()
            if scan.entries is not None:
                _check_known(member.name, scan)
    if scan.entries is None:
        raise _Refused(f"it lacks {ARCHIVE_INDEX}; it is not a complete pruneofa archive")
    missing = [name for name in _expected_members(scan.entries) if name not in scan.members]
    if missing:
        raise _Refused(f"it lacks {missing[0]}; it is not a complete pruneofa archive")
    return scan


def _check_known(name: str, scan: _Scan) -> None:
    """A member against the index: listed, of the declared size, and (stored as it is) of its SHA-256."""
    if name == ARCHIVE_SIGNATURE:
        return
    if name not in scan.expected:
        raise _Refused(f"member {name!r} is not in its index")
    size = scan.members[name].size
    if scan.expected[name] is not None and scan.expected[name] != size:
        raise _Refused(f"member {name!r} declares {size} bytes, its index {scan.expected[name]}")
    if name in scan.digests:
        entry = next(e for e in scan.entries or [] if _member_name(e.name, e.encoding) == name)
        if scan.digests[name] != entry.sha256:
            raise _Refused(f"{entry.name} does not match its recorded SHA-256; the archive is damaged")


def _copy_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, out: BinaryIO | None, digest: Any = None
) -> int:
    """Stream one member to ``out`` (if any) in chunks; the tar reader stops at the declared size."""
    handle = tar.extractfile(member)
    written = 0
    while handle is not None and (block := handle.read(_CHUNK)):
        if out is not None:
            out.write(block)
        if digest is not None:
            digest.update(block)
        written += len(block)
    if written != member.size:
        raise _Refused(f"member {member.name!r} is truncated")
    return written


def _read_exactly(handle: BinaryIO, size: int, what: str) -> bytes:
    data = handle.read(size) if size else b""
    if len(data) != size:
        raise _Refused(f"{what} holds fewer non-zero bytes than its mask marks")
    return data


def _decode_sparse(mask: BinaryIO, values: BinaryIO, size: int, out: BinaryIO, name: str) -> Any:
    """Rebuild ``size`` bytes from a bitmap of the non-zero bytes and those bytes, a chunk at a time."""
    digest, remaining = hashlib.sha256(), size
    while remaining > 0:
        count = min(_CHUNK, remaining)
        bits = mask.read((count + 7) // 8)
        if len(bits) != (count + 7) // 8:
            raise _Refused(f"the mask of {name} is truncated")
        nonzero = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=count).astype(bool)
        block = np.zeros(count, dtype=np.uint8)
        block[nonzero] = np.frombuffer(_read_exactly(values, int(nonzero.sum()), name), dtype=np.uint8)
        data = block.tobytes()
        digest.update(data)
        out.write(data)
        remaining -= count
    if values.read(1):
        raise _Refused(f"{name} holds more non-zero bytes than its mask marks")
    return digest


class _Restorer:
    """Writes the index's files into ``staging`` from the members, in archive order (the xz stream is
    read forward once); a mask waits in ``scratch`` for its values (or values for their mask)."""

    def __init__(self, tar: tarfile.TarFile, scan: _Scan, staging: Path, scratch: Path) -> None:
        self.tar, self.scan, self.staging, self.scratch = tar, scan, staging, scratch
        self.entries = {entry.name: entry for entry in scan.entries or []}
        self.restored: list[str] = []

    def run(self) -> list[str]:
        for name in self.scan.order:
            if name.startswith("files/"):
                self._raw(self.entries[name.removeprefix("files/")], self.scan.members[name])
            elif name.startswith("sparse/"):
                self._sparse_part(name)
        return self.restored

    def _raw(self, entry: _Entry, member: tarfile.TarInfo) -> None:
        digest = hashlib.sha256()
        with (self.staging / entry.name).open("xb") as out:
            _copy_member(self.tar, member, out, digest)
        self._check(entry, digest)

    def _sparse_part(self, member_name: str) -> None:
        stem, part = member_name.removeprefix("sparse/").rsplit(".", 1)
        entry = self.entries[stem]
        other = self.scratch / f"{stem}.{'values' if part == 'mask' else 'mask'}"
        mine = self.scratch / f"{stem}.{part}"
        member = self.scan.members[member_name]
        if not other.exists():  # the first of the two: keep it until the other comes
            with mine.open("xb") as out:
                _copy_member(self.tar, member, out)
            return
        handle = self.tar.extractfile(member)
        with other.open("rb") as kept, (self.staging / entry.name).open("xb") as out:
            mask, values = (kept, handle) if part == "values" else (handle, kept)
            digest = _decode_sparse(mask, values, entry.size, out, entry.name)  # type: ignore[arg-type]
        other.unlink()
        self._check(entry, digest)

    def _check(self, entry: _Entry, digest: Any) -> None:
        if digest.hexdigest() != entry.sha256:
            raise _Refused(f"{entry.name} does not match its recorded SHA-256; the archive is damaged")
        self.restored.append(entry.name)


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tuple[tarfile.TarFile, BinaryIO]]:
    with lzma.open(path, "rb") as raw, tarfile.open(fileobj=_BoundedReader(raw), mode="r:") as tar:  # type: ignore[arg-type]
        yield tar, raw


def _check_stream_end(raw: BinaryIO) -> None:
    """Read what follows the last member (the tar end blocks and padding) to the end of the xz stream, so
    that a truncated or corrupted tail is noticed too; more than a little trailing data is refused."""
    trailing = 0
    while block := raw.read(1 << 16):
        trailing += len(block)
        if trailing > 1 << 20:
            raise _Refused("it has over 1 MiB of data after its last member")


_DAMAGE = (
    tarfile.TarError,
    lzma.LZMAError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    OverflowError,
    RecursionError,
)


def unpack_archive(
    archive: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    quiet: bool = False,
    verify: str | Path | None = None,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> PackageResult:
    """Restore the folder an archive was made from (every file checked against its SHA-256; with
    ``verify``, the index against its ed25519 signature first). A damaged, foreign, oversized or forged
    archive is one :class:`InputError` and nothing is written."""
    path = Path(archive).expanduser()
    if not path.is_file():
        raise InputError(
            f"{path} is not a file; give a .tar.xz written by 'pruneofa package --format archive'"
        )
    public_key = load_public_key(Path(verify)) if verify is not None else None
    target = Path(output).expanduser().resolve()
    check_output_dir(target, overwrite=overwrite)
    try:
        with _open_archive(path) as (tar, raw):
            scan = _scan(tar, max_unpacked_bytes)
            if public_key is not None:
                _check_signature(path, public_key, Path(verify), scan.index or b"", scan.signature)
            _check_free_space(target, scan)
            with atomic_output_dir(target, overwrite=overwrite) as staging:
                with tempfile.TemporaryDirectory(prefix=".pruneofa-unpack-", dir=staging.parent) as scratch:
                    restored = _Restorer(tar, scan, staging, Path(scratch)).run()
                _check_stream_end(raw)
    except _Refused as err:
        raise InputError(f"{path}: {err}; refusing to unpack it (nothing was written)") from None
    except (*_DAMAGE, OSError) as err:
        reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, OSError) and err.strerror:
            reason = err.strerror
        raise InputError(
            f"{path} is not a readable pruneofa archive ({reason}); re-create it with pruneofa package "
            "(nothing was written)"
        ) from err
    signed = scan.signature is not None
    if public_key is not None:
        checked = f"SHA-256 checked, signature verified with {verify}"
    elif signed:
        checked = "SHA-256 checked; the archive is signed: pass --verify PUBKEY to check who signed it"
    else:
        checked = "SHA-256 checked: integrity only, the archive is not signed"
    Progress(quiet).say(f"restored {len(restored)} files to {target} ({checked})")
    summary = {"files": len(restored), "signed": signed, "verified": public_key is not None}
    return PackageResult(target, "folder", sorted(restored), summary)


def _check_free_space(target: Path, scan: _Scan) -> None:
    needed = sum(entry.size for entry in scan.entries or [])
    existing = target.parent
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise InputError(
            f"restoring needs {needed} bytes and {existing} has {free} free; free some space or choose "
            "another --output"
        )
