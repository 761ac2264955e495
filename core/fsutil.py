"""Atomic outputs: a folder or a file is built beside its destination and moved into place only when
complete.

A crash, a failed check or Ctrl-C therefore never leaves a half-written model (or report) where a good one was
expected, and an existing output is never half-overwritten. Every command that writes names its inputs,
so that an output which is, contains or lies inside one of them is refused before anything is touched
(``--overwrite`` would otherwise swap the input itself away). Small files a user hands in (keys) are read
with a bound (:func:`read_bounded`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pruneofa.core.errors import InputError

Inputs = Iterable["str | os.PathLike[str] | None"]


def _local(path: str | os.PathLike[str]) -> Path | None:
    """The resolved path of an input that exists on disk (a hub id or dataset name is not a path: ``None``)."""
    candidate = Path(path).expanduser()
    return candidate.resolve() if os.path.lexists(candidate) else None


def refuse_overlap(output: str | os.PathLike[str], inputs: Inputs, *, what: str = "output") -> Path:
    """Refuse an ``output`` that is, contains or lies inside any of ``inputs`` (symbolic links resolved).

    Writing there would replace (with ``--overwrite``), delete or add to the very files the command
    reads. ``None`` and inputs that are not paths on disk (hub ids, dataset names) are skipped. Returns
    the resolved output."""
    resolved = Path(output).expanduser().resolve()
    for item in inputs:
        if item is None:
            continue
        source = _local(item)
        if source is None:
            continue
        if resolved == source:
            relation = "is the input"
        elif resolved in source.parents:
            relation = "contains the input"
        elif source in resolved.parents:
            relation = "lies inside the input"
        else:
            continue
        raise InputError(
            f"{what} {resolved} {relation} {source}; writing there would replace or change what the command "
            "reads: choose a --output outside it"
        )
    return resolved


def check_output_dir(output: Path, *, overwrite: bool, inputs: Inputs) -> Path:
    """Refuse an output that is, contains or lies inside one of ``inputs`` (every local file or folder the
    command reads), that exists and is not empty (unless ``overwrite``) or that cannot be written."""
    output = refuse_overlap(output, inputs)
    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} exists and is a file; choose another --output")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise InputError(
            f"output {output} exists and is not empty; pass --overwrite or choose another --output"
        )
    parent = output.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"output {output} cannot be written (no write permission on {existing}); choose another --output"
        )
    return output


@contextlib.contextmanager
def atomic_output_dir(output: Path, *, overwrite: bool, inputs: Inputs) -> Iterator[Path]:
    """Yield an empty temporary folder on the same file system; on success it replaces ``output``.

    ``inputs`` are the local files and folders the command reads (see :func:`check_output_dir`); they are
    checked again here, right before the old output is swapped away."""
    inputs = list(inputs)
    output = check_output_dir(output, overwrite=overwrite, inputs=inputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
    refuse_overlap(output, inputs)  # a link changed while the work ran must not redirect the swap
    if output.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        backup.rmdir()
        output.rename(backup)
    try:
        staging.rename(output)
    except BaseException:
        if backup is not None:
            backup.rename(output)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then ``os.replace`` it into place: a reader
    (a CI artifact upload, a browser) sees the old file or the whole new one, never half of one, and two
    runs writing the same path do not share a temporary file. The file gets the permissions a plain write
    would give (the umask applies; ``tempfile.mkstemp`` would leave it readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def read_bounded(
    path: str | os.PathLike[str], limit: int, *, what: str = "file", fix: str = "give the right file"
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is an :class:`InputError`.

    Devices (``/dev/zero``), FIFOs and sockets are refused before a byte is read (they never end, or
    block), and at most ``limit + 1`` bytes are read, so a file that grows or lies about its size cannot
    make the read unbounded."""
    path = Path(path).expanduser()
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore the flag.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise InputError(f"{what} {path} is not a regular file; {fix}")
            # The stated size refuses a large file unread; the bounded read, one that grows meanwhile.
            stated = status.st_size
            data = b"" if stated > limit else handle.read(limit + 1)
    except OSError as err:
        raise InputError(f"cannot read {what} {path} ({err.strerror or err}); {fix}") from err
    if stated > limit or len(data) > limit:
        raise InputError(f"{what} {path} is over {_size(limit)}; {fix}")
    return data


def _size(limit: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"
