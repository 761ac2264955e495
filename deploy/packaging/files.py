"""What packaging reads and what it returns: the folder's own files in, the written files out.

Packaging reads only the folder's own files: a link that points outside it is refused (or, with
``skip_outside_links``, left out), as are FIFOs and devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.runtime import NOT_EXPORTED, ONNX_FILE, OPENVINO_BIN, OPENVINO_XML


@dataclass
class PackageResult:
    """What one ``pruneofa package`` run wrote: the output, its format, its files and a summary."""

    output: Path
    format: str
    files: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


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


def subfolders(folder: Path) -> list[Path]:
    """Real sub-folders and links to folders inside ``folder`` (links out were refused or skipped)."""
    root = folder.resolve()
    return [p for p in folder.iterdir() if p.is_dir() and p.resolve().is_relative_to(root)]


def model_kind(folder: Path, files: dict[str, Path]) -> tuple[str, list[Path]]:
    """``openvino`` and the IR's two files where the folder has them, else ``onnx`` and its one file."""
    if OPENVINO_XML in files and OPENVINO_BIN in files:
        return "openvino", [files[OPENVINO_XML], files[OPENVINO_BIN]]
    if ONNX_FILE in files:
        return "onnx", [files[ONNX_FILE]]
    raise InputError(f"{folder} has no {OPENVINO_XML}/.bin or {ONNX_FILE}; {NOT_EXPORTED}")


def relative_files(root: Path) -> list[str]:
    """Every file written below ``root``, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
