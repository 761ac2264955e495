"""The archive's format, shared by its writer and its reader: member names, the index and its schema.

An archive (``NAME.tar.xz``) holds every file of a flat model folder. Large binaries (weights) are stored
as a bitmap of their non-zero bytes plus those bytes (``sparse/NAME.mask``, ``sparse/NAME.values``), so a
zero weight costs about one bit per byte before xz and a non-zero weight its own bytes: the size follows
the number of non-zeros. Other files are stored as they are (``files/NAME``). The index
(:data:`ARCHIVE_INDEX`: names, sizes, SHA-256, non-zero counts) comes first, then an optional ed25519
signature of the index (:data:`ARCHIVE_SIGNATURE`), then the data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ARCHIVE_INDEX = "pruneofa-archive.json"
ARCHIVE_SIGNATURE = "pruneofa-archive.sig"
ARCHIVE_FORMAT = "pruneofa-sparse-archive"
ARCHIVE_VERSION = 2  # 2: index (with non-zero counts) first, optional signature; 1: index last
CHUNK = 8 << 20  # bytes read or decoded per step (a multiple of 8: one mask byte covers 8 bytes)
INDEX_LIMIT = 16 << 20
MAX_MEMBERS = 10_000


class Entry(BaseModel):
    """One file of the folder, as the index records it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    encoding: Literal["raw", "nonzero-bytes"]
    nonzero: int | None = Field(None, ge=0)


class Index(BaseModel):
    """The archive's index (:data:`ARCHIVE_INDEX`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["pruneofa-sparse-archive"]
    version: Literal[1, 2]
    files: list[Entry] = Field(max_length=MAX_MEMBERS // 2)


def member_name(name: str, encoding: str, part: str = "") -> str:
    """The tar member that holds file ``name``: ``files/NAME`` stored as it is (``raw``), otherwise
    ``sparse/NAME.PART`` for its ``mask`` or its ``values``."""
    return f"files/{name}" if encoding == "raw" else f"sparse/{name}.{part}"
