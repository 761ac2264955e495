"""Reading an archive as hostile until proven otherwise: the checks made before anything is written.

Every member header is checked (regular files with expected names only, declared sizes within
``max_unpacked_bytes`` and equal to what the index says) before its data is decoded; metadata reads are
bounded; files stored as they are are hashed in passing. A problem is a :class:`Refused`, which the
unpacker (:mod:`.archive_restore`) turns into one line naming the archive."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from pruneofa.deploy.packaging.archive_format import (
    ARCHIVE_INDEX,
    ARCHIVE_SIGNATURE,
    CHUNK,
    INDEX_LIMIT,
    MAX_MEMBERS,
    Entry,
    Index,
    member_name,
)

_SIGNATURE_LIMIT = 4096
_METADATA_READ_LIMIT = 32 << 20  # no legitimate single read of the tar stream is larger
_MEMBER_NAME = re.compile(r"(files/[^/]+|sparse/[^/]+\.(mask|values)|pruneofa-archive\.(json|sig))")


class Refused(Exception):
    """A problem found in an archive: becomes one :class:`InputError` line naming the archive."""


class BoundedReader(io.RawIOBase):
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
            raise Refused(f"a tar header declares {size} bytes of metadata")
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


@contextlib.contextmanager
def open_archive(path: Path) -> Iterator[tuple[tarfile.TarFile, lzma.LZMAFile]]:
    """The archive as a tar reader over the bounded xz stream, and the xz stream itself."""
    with lzma.open(path, "rb") as raw, tarfile.open(fileobj=BoundedReader(raw), mode="r:") as tar:  # type: ignore[arg-type]
        yield tar, raw


def expected_members(entries: list[Entry]) -> dict[str, int | None]:
    """Member name → the size its header must declare (``None``: known only from the mask, version 1)."""
    expected: dict[str, int | None] = {}
    for entry in entries:
        if entry.encoding == "raw":
            expected[member_name(entry.name, "raw")] = entry.size
        else:
            expected[member_name(entry.name, "sparse", "mask")] = (entry.size + 7) // 8
            expected[member_name(entry.name, "sparse", "values")] = entry.nonzero
    return expected


def parse_index(data: bytes, limit: int) -> tuple[list[Entry], int]:
    """The index's entries and format version, each name a plain file name and every size within
    ``limit``."""
    if len(data) > INDEX_LIMIT:
        raise Refused(f"{ARCHIVE_INDEX} is over {INDEX_LIMIT} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
        index = Index.model_validate(raw)
    except RecursionError:
        raise Refused(f"{ARCHIVE_INDEX} is nested too deeply to be an index") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Refused(f"{ARCHIVE_INDEX} is not JSON ({err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise Refused(f"{ARCHIVE_INDEX} is malformed at {where}: {first['msg']}") from None
    seen: set[str] = set()
    for entry in index.files:
        name = entry.name
        if "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or not name.isprintable():
            raise Refused(f"the index names a file outside the folder ({name!r})")
        if name.lower() in seen:
            raise Refused(f"the index names {name!r} twice")
        seen.add(name.lower())
        if entry.size > limit:
            raise Refused(f"{name} declares {entry.size} bytes, over --max-unpacked-bytes {limit}")
        if entry.encoding == "nonzero-bytes":
            if index.version >= 2 and entry.nonzero is None:
                raise Refused(f"the index gives no non-zero count for {name}")
            if entry.nonzero is not None and entry.nonzero > entry.size:
                raise Refused(f"the index gives {name} more non-zero bytes than bytes")
    total = sum(entry.size for entry in index.files)
    if total > limit:
        raise Refused(f"its files add up to {total} bytes, over --max-unpacked-bytes {limit}")
    return index.files, index.version


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise Refused(f"{member.name} declares {member.size} bytes, over its limit of {limit}")
    handle = tar.extractfile(member)
    data = handle.read(member.size) if handle is not None else b""
    if len(data) != member.size:
        raise Refused(f"{member.name} is truncated")
    return data


@dataclass
class Scan:
    """What the scan found: the member headers in archive order, the index and signature, and the
    SHA-256 of each member stored as it is."""

    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    index: bytes | None = None
    signature: bytes | None = None
    entries: list[Entry] | None = None
    expected: dict[str, int | None] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # SHA-256 of each raw member, taken in passing
    version: int = 0


def _check_header(member: tarfile.TarInfo, scan: Scan, limit: int, declared: int) -> int:
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
        raise Refused(f"member {name!r} is {kind}; a pruneofa archive holds regular files only")
    if name in scan.members:
        raise Refused(f"member {name!r} appears twice")
    if len(scan.members) >= MAX_MEMBERS:
        raise Refused(f"it holds over {MAX_MEMBERS} members")
    if member.size < 0 or member.size > limit:
        raise Refused(f"member {name!r} declares {member.size} bytes, over --max-unpacked-bytes {limit}")
    declared += member.size
    if declared > 2 * limit + INDEX_LIMIT:  # data members (mask + values ≤ 1.125 × size) and the index
        raise Refused(f"its members declare {declared} bytes, over --max-unpacked-bytes {limit}")
    if scan.entries is not None and name not in (ARCHIVE_INDEX, ARCHIVE_SIGNATURE):
        if name not in scan.expected:
            raise Refused(f"member {name!r} is not in its index")
        if scan.expected[name] is not None and scan.expected[name] != member.size:
            raise Refused(f"member {name!r} declares {member.size} bytes, its index {scan.expected[name]}")
    elif not _MEMBER_NAME.fullmatch(name):
        raise Refused(f"member {name!r} is not part of a pruneofa archive")
    return declared


def scan_archive(tar: tarfile.TarFile, limit: int) -> Scan:
    """Every member header, checked before moving past it (which decodes its data): regular files with the
    names and sizes the index allows. The index and signature are read as they come (version 2: first);
    files stored as they are are hashed in passing, so that a wrong one is refused before anything is
    written (a bomb of zeros never reaches the disk)."""
    scan, declared = Scan(), 0
    while (member := tar.next()) is not None:
        declared = _check_header(member, scan, limit, declared)
        scan.members[member.name] = member
        scan.order.append(member.name)
        if member.name == ARCHIVE_INDEX:
            scan.index = _read_small(tar, member, INDEX_LIMIT)
            scan.entries, scan.version = parse_index(scan.index, limit)
            scan.expected = expected_members(scan.entries)
            for seen in scan.order[:-1]:  # version 1: the data came first; check it now
                _check_known(seen, scan)
        elif member.name == ARCHIVE_SIGNATURE:
            scan.signature = _read_small(tar, member, _SIGNATURE_LIMIT)
        elif member.name.startswith("files/"):
            digest = hashlib.sha256()
            copy_member(tar, member, None, digest)
            scan.digests[member.name] = digest.hexdigest()
            if scan.entries is not None:
                _check_known(member.name, scan)
    if scan.entries is None:
        raise Refused(f"it lacks {ARCHIVE_INDEX}; it is not a complete pruneofa archive")
    missing = [name for name in expected_members(scan.entries) if name not in scan.members]
    if missing:
        raise Refused(f"it lacks {missing[0]}; it is not a complete pruneofa archive")
    return scan


def _check_known(name: str, scan: Scan) -> None:
    """A member against the index: listed, of the declared size, and (stored as it is) of its SHA-256."""
    if name == ARCHIVE_SIGNATURE:
        return
    if name not in scan.expected:
        raise Refused(f"member {name!r} is not in its index")
    size = scan.members[name].size
    if scan.expected[name] is not None and scan.expected[name] != size:
        raise Refused(f"member {name!r} declares {size} bytes, its index {scan.expected[name]}")
    if name in scan.digests:
        entry = next(e for e in scan.entries or [] if member_name(e.name, e.encoding) == name)
        if scan.digests[name] != entry.sha256:
            raise Refused(f"{entry.name} does not match its recorded SHA-256; the archive is damaged")


def copy_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, out: BinaryIO | None, digest: Any = None
) -> int:
    """Stream one member to ``out`` (if any) in chunks; the tar reader stops at the declared size."""
    handle = tar.extractfile(member)
    written = 0
    while handle is not None and (block := handle.read(CHUNK)):
        if out is not None:
            out.write(block)
        if digest is not None:
            digest.update(block)
        written += len(block)
    if written != member.size:
        raise Refused(f"member {member.name!r} is truncated")
    return written


def check_stream_end(raw: lzma.LZMAFile) -> None:
    """Read what follows the last member (the tar end blocks and padding) to the end of the xz stream, so
    that a truncated or corrupted tail is noticed too; more than a little trailing data is refused."""
    trailing = 0
    while block := raw.read(1 << 16):
        trailing += len(block)
        if trailing > 1 << 20:
            raise Refused("it has over 1 MiB of data after its last member")
