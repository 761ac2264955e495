"""``pruneofa package``: an exported folder as a model repository (:mod:`.repository`) or an archive
(:mod:`.archive_writer`), or an archive restored (:mod:`.archive_restore`); the checks that come before
anything is written, the atomic output and the folder's ``pruneofa.json``."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pruneofa.core.errors import InputError
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
from pruneofa.deploy.config import PackageConfig
from pruneofa.deploy.naming import default_model_name
from pruneofa.deploy.packaging.archive_restore import unpack_archive
from pruneofa.deploy.packaging.archive_writer import write_archive
from pruneofa.deploy.packaging.files import (
    PackageResult,
    folder_files,
    model_kind,
    relative_files,
    subfolders,
)
from pruneofa.deploy.packaging.ir_checks import check_ir
from pruneofa.deploy.packaging.repository import write_repository
from pruneofa.deploy.packaging.signing import load_private_key
from pruneofa.deploy.packaging.sparse_ir import sparse_ir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _package_manifest(
    folder: Path,
    source: Manifest | None,
    files: dict[str, Path],
    stage_note: dict[str, float],
    command: list[str] | None,
) -> Manifest:
    """The output's ``pruneofa.json``: the source folder's lineage and records, its files' SHA-256 and the
    run's numeric summary."""
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
    # the name pruneofa serve gives the model (all-MiniLM-L6-v2-openvino-int8, not the folder's openvino-int8),
    # for repositories and archives alike: an archive restores under that name by default
    model_name = name or default_model_name(path)
    if not _NAME.match(model_name):
        raise InputError(
            f"model name {model_name!r} is not usable by the servers; pass --name with letters, digits, _ . -"
        )
    if not 1 <= config.max_batch_size <= 4096:
        raise InputError("--max-batch-size must be between 1 and 4096")
    signing_key = load_private_key(config.sign) if config.sign is not None else None
    files = folder_files(path, skip_outside_links=config.skip_outside_links)
    kind, model_files = model_kind(path, files)
    source = read_manifest(path) if MANIFEST_NAME in files else None
    sparse = sparse_ir(path, files, format, config.sparse_kernels)
    if format != "archive" and kind == "openvino":  # the IRs read below, and the one shipped
        check_ir(model_files[0], model_files[1], source)
        if sparse is not None:
            check_ir(sparse.files[0], sparse.files[1], source)
    target = Path(output) if output else path.parent / f"{path.name}-{format}"
    inputs = [path, config.sign]
    check_output_dir(target, overwrite=overwrite, inputs=inputs)
    started = time.perf_counter()
    with atomic_output_dir(target, overwrite=overwrite, inputs=inputs) as staging:
        if format == "archive":
            if subfolders(path):
                raise InputError(
                    f"{path} has sub-folders; the archive holds a flat model folder (move them out)"
                )
            summary = write_archive(files, source, staging / f"{model_name}.tar.xz", signing_key, quiet)
        else:
            summary = write_repository(
                files, staging, format, model_name, kind, model_files, config.max_batch_size, sparse
            )
        summary["wall_time_s"] = round(time.perf_counter() - started, 2)
        metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
        # Triton loads every top-level folder of a repository as a model: its records go inside the model's
        # folder, where Triton ignores what is not a numbered version
        records = staging / model_name if format == "triton" else staging
        write_manifest(records, _package_manifest(path, source, files, metrics, command))
        written = relative_files(staging)
    Progress(quiet).say(f"package ({format}) written to {target}: " + ", ".join(written))
    return PackageResult(target, format, written, summary)
