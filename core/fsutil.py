"""Atomic output folders: build beside the destination, move into place only when complete.

A crash, a failed check or Ctrl-C therefore never leaves a half-written model where a good one was
expected, and an existing output is never half-overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pruneofa.core.errors import InputError


def check_output_dir(output: Path, *, overwrite: bool) -> Path:
    """Refuse an output that exists and is not empty (unless ``overwrite``) or that cannot be written."""
    output = Path(output).expanduser().resolve()
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
def atomic_output_dir(output: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary folder on the same file system; on success it replaces ``output``."""
    output = check_output_dir(output, overwrite=overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
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
