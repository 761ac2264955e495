"""Restoring hostile archives: peak memory, time and outcome, for docs/deploy.md ("Hardening").

Builds, in a temporary folder, the archives of issue 17 at full size and restores each in a fresh process
(so that the peak memory is the restore's own, read from /proc/self/status VmHWM):

* ``liar``: 0.5 MB of data whose tar header and index declare a 1 GB file;
* ``bomb``: 1 GB of zeros (a ~150 kB archive) whose recorded SHA-256 is wrong;
* ``bomb-limited``: the same with ``--max-unpacked-bytes 100000000``;
* ``pax``: a PAX header declaring 1 GB of metadata.

Each must be refused with one line (exit 2) and leave nothing behind.

Run:  .venv/bin/python benchmarks/hostile_archives.py
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

GB = 1 << 30
_RESTORE = """
import sys
from pruneofa.core.errors import InputError
from pruneofa.deploy.packaging import unpack_archive


def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024


base = peak_mb()
try:
    unpack_archive(sys.argv[1], sys.argv[2], quiet=True, max_unpacked_bytes=int(sys.argv[3]))
    print("restored")
except InputError as err:
    print("refused:", str(err)[:120])
print(peak_mb() - base)
"""


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _index(size: int, sha: str = "0" * 64) -> bytes:
    entry = {"name": "w.bin", "size": size, "sha256": sha, "encoding": "raw"}
    data = json.dumps({"format": "pruneofa-sparse-archive", "version": 1, "files": [entry]}).encode()
    return _header("pruneofa-archive.json", len(data)) + data + b"\0" * (-len(data) % 512)


def _write(path: Path, parts) -> Path:
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0)
    with path.open("wb") as out:
        for part in parts:
            out.write(compressor.compress(part))
        out.write(compressor.flush())
    return path


def _zeros(size: int):
    chunk = bytes(1 << 20)
    for _ in range(size // len(chunk)):
        yield chunk


def build(folder: Path) -> dict[str, Path]:
    liar = _write(folder / "liar.tar.xz", [_index(GB), _header("files/w.bin", GB), os.urandom(500_000)])
    bomb = _write(
        folder / "bomb.tar.xz",
        [
            _index(GB, hashlib.sha256(b"not these bytes").hexdigest()),
            _header("files/w.bin", GB),
            *_zeros(GB),
            bytes(1024),
        ],
    )
    pax = _write(
        folder / "pax.tar.xz", [_header("././@PaxHeader", GB, tarfile.XHDTYPE), b"x" * 512, bytes(1024)]
    )
    return {"liar": liar, "bomb": bomb, "bomb-limited": bomb, "pax": pax}


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    print("| archive | archive size | outcome | peak memory growth | time |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, archive in build(folder).items():
            limit = 100_000_000 if name == "bomb-limited" else 32 * GB
            out = folder / f"out-{name}"
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-c", _RESTORE, str(archive), str(out), str(limit)],
                capture_output=True,
                text=True,
                env=env,
                timeout=1200,
            )
            elapsed = time.perf_counter() - started
            lines = run.stdout.strip().splitlines()
            outcome = lines[0] if lines else run.stderr.strip().splitlines()[-1]
            left = sorted(p.name for p in folder.iterdir() if p.name.startswith((".out", "out")))
            print(
                f"| {name} | {archive.stat().st_size / 1e3:.0f} kB | {outcome[:90]} | {lines[-1] if lines else '?'} MB | "
                f"{elapsed:.1f} s |" + (f" LEFT BEHIND: {left}" if left else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
