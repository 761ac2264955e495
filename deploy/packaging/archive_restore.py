"""Restoring the folder an archive was made from, streamed to disk once the scan (:mod:`.archive_scan`)
has accepted every member header.

Data is streamed and stops at the declared size, every file is checked against its SHA-256, and with
``verify`` the index must first carry a valid signature of the given key (:mod:`.signing`). Any problem is
one line (exit 2) and nothing is left behind."""

from __future__ import annotations

import hashlib
import lzma
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.progress import Progress
from pruneofa.deploy.packaging.archive_format import CHUNK, Entry
from pruneofa.deploy.packaging.archive_scan import (
    Refused,
    Scan,
    check_stream_end,
    copy_member,
    open_archive,
    scan_archive,
)
from pruneofa.deploy.packaging.files import PackageResult
from pruneofa.deploy.packaging.signing import check_signature, load_public_key

DEFAULT_MAX_UNPACKED_BYTES = 32 << 30
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


def _read_exactly(handle: BinaryIO, size: int, what: str) -> bytes:
    data = handle.read(size) if size else b""
    if len(data) != size:
        raise Refused(f"{what} holds fewer non-zero bytes than its mask marks")
    return data


def _decode_sparse(mask: BinaryIO, values: BinaryIO, size: int, out: BinaryIO, name: str) -> Any:
    """Rebuild ``size`` bytes from a bitmap of the non-zero bytes and those bytes, a chunk at a time."""
    digest, remaining = hashlib.sha256(), size
    while remaining > 0:
        count = min(CHUNK, remaining)
        bits = mask.read((count + 7) // 8)
        if len(bits) != (count + 7) // 8:
            raise Refused(f"the mask of {name} is truncated")
        nonzero = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=count).astype(bool)
        block = np.zeros(count, dtype=np.uint8)
        block[nonzero] = np.frombuffer(_read_exactly(values, int(nonzero.sum()), name), dtype=np.uint8)
        data = block.tobytes()
        digest.update(data)
        out.write(data)
        remaining -= count
    if values.read(1):
        raise Refused(f"{name} holds more non-zero bytes than its mask marks")
    return digest


class _Restorer:
    """Writes the index's files into ``staging`` from the members, in archive order (the xz stream is
    read forward once); a mask waits in ``scratch`` for its values (or values for their mask)."""

    def __init__(self, tar: tarfile.TarFile, scan: Scan, staging: Path, scratch: Path) -> None:
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

    def _raw(self, entry: Entry, member: tarfile.TarInfo) -> None:
        digest = hashlib.sha256()
        with (self.staging / entry.name).open("xb") as out:
            copy_member(self.tar, member, out, digest)
        self._check(entry, digest)

    def _sparse_part(self, member_name: str) -> None:
        stem, part = member_name.removeprefix("sparse/").rsplit(".", 1)
        entry = self.entries[stem]
        other = self.scratch / f"{stem}.{'values' if part == 'mask' else 'mask'}"
        mine = self.scratch / f"{stem}.{part}"
        member = self.scan.members[member_name]
        if not other.exists():  # the first of the two: keep it until the other comes
            with mine.open("xb") as out:
                copy_member(self.tar, member, out)
            return
        handle = self.tar.extractfile(member)
        with other.open("rb") as kept, (self.staging / entry.name).open("xb") as out:
            mask, values = (kept, handle) if part == "values" else (handle, kept)
            digest = _decode_sparse(mask, values, entry.size, out, entry.name)  # type: ignore[arg-type]
        other.unlink()
        self._check(entry, digest)

    def _check(self, entry: Entry, digest: Any) -> None:
        if digest.hexdigest() != entry.sha256:
            raise Refused(f"{entry.name} does not match its recorded SHA-256; the archive is damaged")
        self.restored.append(entry.name)


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
    check_output_dir(target, overwrite=overwrite, inputs=[path, verify])
    try:
        with open_archive(path) as (tar, raw):
            scan = scan_archive(tar, max_unpacked_bytes)
            if public_key is not None and verify is not None:
                check_signature(path, public_key, Path(verify), scan.index or b"", scan.signature)
            _check_free_space(target, scan)
            with atomic_output_dir(target, overwrite=overwrite, inputs=[path, verify]) as staging:
                with tempfile.TemporaryDirectory(prefix=".pruneofa-unpack-", dir=staging.parent) as scratch:
                    restored = _Restorer(tar, scan, staging, Path(scratch)).run()
                check_stream_end(raw)
    except Refused as err:
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


def _check_free_space(target: Path, scan: Scan) -> None:
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
