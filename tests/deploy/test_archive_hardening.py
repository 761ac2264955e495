"""``pruneofa package`` against hostile files (issue 17): crafted archives (links, special members, huge or
negative declared sizes, truncated xz, bombs, malformed or deeply nested indexes, forged contents) are one
line, exit 2, nothing written and memory bounded; signing makes forgeries detectable; packaging never
copies a file from outside the folder through a link."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import resource
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pruneofa.cli import main
from pruneofa.deploy.config import package_config
from pruneofa.deploy.packaging import package_model, unpack_archive

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A flat folder shaped like an exported one: a 90 %-zero "model.onnx" large enough to be stored as
    non-zero bytes, and small text files (the archive path reads no model)."""
    folder = tmp_path / "model"
    folder.mkdir()
    rng = np.random.default_rng(0)
    weights = rng.integers(1, 255, size=200_000, dtype=np.uint8)
    weights[rng.random(200_000) < 0.9] = 0
    (folder / "model.onnx").write_bytes(weights.tobytes())
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0"}))
    return folder


def _archive(folder: Path, out: Path, **options) -> Path:
    result = package_model(folder, package_config(format="archive", output=out, **options), quiet=True)
    return next(result.output.glob("*.tar.xz"))


def _members(archive: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(archive, "r:xz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, linkname
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _block(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _tar(*parts: bytes) -> bytes:
    return b"".join(parts) + b"\0" * 1024


def _member(name: str, data: bytes, declared: int | None = None, **attrs) -> bytes:
    return _header(name, len(data) if declared is None else declared, **attrs) + _block(data)


def _xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=0)


def _with_size_field(header: bytes, field: bytes) -> bytes:
    """A header with its 12-byte size field replaced and its checksum recomputed."""
    block = bytearray(header[:512])
    block[124:136] = field
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _index(files: list[dict], version: int = 1) -> bytes:
    """An index as pruneofa writes it (version 1, which this version still reads, so that the same crafted
    archive shows what the earlier reader did with it)."""
    return json.dumps({"format": "pruneofa-sparse-archive", "version": version, "files": files}).encode()


def _entry(name: str, data: bytes) -> dict:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "encoding": "raw"}


def _restore(archive: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["package", str(archive), "--format", "folder", "--output", str(out), "--quiet", *extra])
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, out: Path, *words: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    assert err.count("refusing to unpack it") <= 1, err  # said once (issue 28.7)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith((".out", ".pruneofa-unpack"))]


GOOD = b"hello"
INDEX = "pruneofa-archive.json"


def _with_a(member: bytes) -> bytes:
    """A valid index naming one file, ``a``, followed by ``member`` standing for its data."""
    return _tar(_member(INDEX, _index([_entry("a", GOOD)])), member)


CRAFTED = {
    "symlink": _with_a(_member("files/a", b"", kind=tarfile.SYMTYPE, linkname="/etc/passwd")),
    "hard link": _with_a(_member("files/a", b"", kind=tarfile.LNKTYPE, linkname="/etc/passwd")),
    "hard link inside": _with_a(_member("files/a", b"", kind=tarfile.LNKTYPE, linkname=INDEX)),
    "folder": _with_a(_member("files/a", b"", kind=tarfile.DIRTYPE)),
    "fifo": _with_a(_member("files/a", b"", kind=tarfile.FIFOTYPE)),
    "device": _with_a(_member("files/a", b"", kind=tarfile.CHRTYPE)),
    "size 1e12": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "size": 10**12}])),
        _member("files/a", GOOD, declared=10**12),
    ),
    "negative size": _with_a(
        _with_size_field(_header("files/a", 5), b"\xff" + (256**11 - 100).to_bytes(11, "big")) + _block(GOOD)
    ),
    "size differs from index": _with_a(_member("files/a", GOOD + b"!")),
    "foreign member": _tar(
        _member(INDEX, _index([_entry("a", GOOD)])), _member("files/a", GOOD), _member("../../x", GOOD)
    ),
    "member not in index": _tar(_member(INDEX, _index([])), _member("files/b", GOOD)),
    "member missing": _tar(_member(INDEX, _index([_entry("a", GOOD)]))),
    "index missing": _tar(_member("files/a", GOOD)),
    "index: nested": _tar(_member(INDEX, b"[" * 100_000 + b"]" * 100_000)),
    "index: nested object": _tar(_member(INDEX, b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")),
    "index: not JSON": _tar(_member(INDEX, b"{nope")),
    "index: a list": _tar(_member(INDEX, b"[1, 2]")),
    "index: files not a list": _tar(
        _member(INDEX, json.dumps({"format": "pruneofa-sparse-archive", "version": 1, "files": 3}).encode())
    ),
    "index: entry not an object": _tar(
        _member(INDEX, json.dumps({"format": "pruneofa-sparse-archive", "version": 1, "files": [3]}).encode())
    ),
    "index: size a float": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "size": 5.5}])), _member("files/a", GOOD)
    ),
    "index: size a string": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "size": "5"}])), _member("files/a", GOOD)
    ),
    "index: negative size": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "size": -5}])), _member("files/a", GOOD)
    ),
    "index: sparse of negative size": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "size": -5, "encoding": "nonzero-bytes"}])),
        _member("sparse/a.mask", b""),
        _member("sparse/a.values", b""),
    ),
    "index: unknown encoding": _tar(
        _member(INDEX, _index([{**_entry("a", GOOD), "encoding": "zip"}])), _member("files/a", GOOD)
    ),
    "index: a path": _tar(_member(INDEX, _index([_entry("../../x", GOOD)])), _member("files/../../x", GOOD)),
    "index: twice": _tar(
        _member(INDEX, _index([_entry("a", GOOD), _entry("A", GOOD)])),
        _member("files/a", GOOD),
        _member("files/A", GOOD),
    ),
    "index: no name": _tar(_member(INDEX, _index([{"size": 5}]))),
    "pax header of 1 GB": _tar(_header("././@PaxHeader", 1 << 30, kind=tarfile.XHDTYPE) + _block(b"x")),
    "long name header of 1 GB": _tar(
        _header("././@LongLink", 1 << 30, kind=tarfile.GNUTYPE_LONGNAME) + _block(b"x")
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_archive_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    archive = tmp_path / "crafted.tar.xz"
    archive.write_bytes(_xz(CRAFTED[case]))
    code, err = _restore(archive, tmp_path / "out", capsys)
    _assert_refused(code, err, tmp_path / "out", "crafted.tar.xz")


def test_truncated_or_foreign_files_are_refused(model_folder, tmp_path, capsys):
    packed = _archive(model_folder, tmp_path / "dist")
    data = packed.read_bytes()
    for name, content in {
        "half.tar.xz": data[: len(data) // 2],
        "no-end.tar.xz": data[:-40],
        "flipped.tar.xz": data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
        "plain.tar.xz": b"not an archive at all",
        "empty.tar.xz": b"",
        "tar-not-xz.tar.xz": lzma.decompress(data),
    }.items():
        (tmp_path / name).write_bytes(content)
        code, err = _restore(tmp_path / name, tmp_path / "out", capsys)
        _assert_refused(code, err, tmp_path / "out", name)


def test_an_archive_declaring_more_than_it_holds_is_refused_early(tmp_path, capsys):
    """0.5 MB of real data whose header and index declare 1 GB: refused at the end of the real data."""
    payload = os.urandom(500_000)
    declared = 1 << 30
    entry = {"name": "w.bin", "size": declared, "sha256": "0" * 64, "encoding": "raw"}
    archive = tmp_path / "liar.tar.xz"
    archive.write_bytes(
        _xz(_member("pruneofa-archive.json", _index([entry])) + _header("files/w.bin", declared) + payload)
    )
    code, err = _restore(archive, tmp_path / "out", capsys)
    _assert_refused(code, err, tmp_path / "out", "not a readable")


def test_the_size_limit_refuses_before_decoding(tmp_path, capsys):
    zeros = bytes(50_000_000)
    entry = _entry("w.bin", zeros)
    archive = tmp_path / "big.tar.xz"
    archive.write_bytes(
        _xz(_tar(_member("pruneofa-archive.json", _index([entry])), _member("files/w.bin", zeros)))
    )
    code, err = _restore(archive, tmp_path / "out", capsys, "--max-unpacked-bytes", "10000000")
    _assert_refused(code, err, tmp_path / "out", "over --max-unpacked-bytes 10000000")


_MEASURE = """
import sys
from pruneofa.core.errors import InputError
from pruneofa.deploy.packaging import unpack_archive


def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would carry over the parent's through exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024


base = peak_mb()
try:
    unpack_archive(sys.argv[1], sys.argv[2], quiet=True)
    print("restored")
except InputError as err:
    print("refused:", err)
print(peak_mb() - base)
"""


def test_an_xz_bomb_is_decoded_in_bounded_memory(tmp_path):
    """256 MB of zeros (a 40 kB archive) whose recorded hash is wrong: streamed to disk, refused on the hash,
    the peak memory growing by a few chunks, not by the file (the old reader held it twice over)."""
    size = 256 << 20
    compressor, parts = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0), []
    entry = {"name": "w.bin", "size": size, "sha256": "0" * 64, "encoding": "raw"}
    parts.append(compressor.compress(_member("pruneofa-archive.json", _index([entry]))))
    parts.append(compressor.compress(_header("files/w.bin", size)))
    chunk = bytes(1 << 20)
    parts += [compressor.compress(chunk) for _ in range(size // len(chunk))]
    parts += [compressor.compress(b"\0" * 1024), compressor.flush()]
    archive = tmp_path / "bomb.tar.xz"
    archive.write_bytes(b"".join(parts))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(archive), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, run.stderr
    assert lines[0].startswith("refused:") and "SHA-256" in lines[0]
    assert int(lines[-1]) < 100, f"peak memory grew by {lines[-1]} MB"
    assert not (tmp_path / "out").exists()


# --- integrity and authenticity -------------------------------------------------------------------------


def _keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = tmp_path / f"{name}.pem"
    public = tmp_path / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return private, public


def _forge(archive: Path, target: Path) -> Path:
    """Change the weights and re-hash the index (what the SHA-256 check alone cannot catch)."""
    members = _members(archive)
    files = dict(members)
    index = json.loads(files["pruneofa-archive.json"])
    forged = bytearray(files["files/config.json"])
    forged[:1] = b" "
    files["files/config.json"] = bytes(forged)
    for entry in index["files"]:
        if entry["name"] == "config.json":
            entry["sha256"] = hashlib.sha256(forged).hexdigest()
    files["pruneofa-archive.json"] = json.dumps(index).encode()
    target.write_bytes(_xz(_tar(*(_member(name, files[name]) for name, _ in members))))
    return target


def test_a_signed_archive_restores_and_a_forged_one_does_not(model_folder, tmp_path, capsys):
    private, public = _keys(tmp_path, "author")
    _, stranger = _keys(tmp_path, "stranger")
    signed = _archive(model_folder, tmp_path / "dist", sign=private)
    code, err = _restore(signed, tmp_path / "back", capsys, "--verify", str(public))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == sorted(
        p.name for p in model_folder.iterdir()
    )
    forged = _forge(signed, tmp_path / "forged.tar.xz")
    # integrity only: the re-hashed forgery restores without --verify (the docs say so) ...
    code, err = _restore(forged, tmp_path / "unchecked", capsys)
    assert code == 0
    # ... and is refused with it
    code, err = _restore(forged, tmp_path / "out", capsys, "--verify", str(public))
    _assert_refused(code, err, tmp_path / "out", "signature does not verify")
    code, err = _restore(signed, tmp_path / "out", capsys, "--verify", str(stranger))
    _assert_refused(code, err, tmp_path / "out", "signature does not verify")
    unsigned = _archive(model_folder, tmp_path / "plain")
    code, err = _restore(unsigned, tmp_path / "out", capsys, "--verify", str(public))
    _assert_refused(code, err, tmp_path / "out", "not signed")


def test_bad_keys_are_one_line_errors(model_folder, tmp_path, capsys):
    (tmp_path / "junk.pem").write_text("not a key")
    code = main(["package", str(model_folder), "--format", "archive", "--sign", str(tmp_path / "junk.pem")])
    err = capsys.readouterr().err
    assert code == 2 and "not a PEM or OpenSSH private key" in err and len(err.strip().splitlines()) == 1
    code = main(["package", str(model_folder), "--format", "ovms", "--sign", str(tmp_path / "junk.pem")])
    assert code == 2 and "--format archive" in capsys.readouterr().err


def test_old_archives_with_the_index_last_still_restore(model_folder, tmp_path, capsys):
    members = _members(_archive(model_folder, tmp_path / "dist"))
    index = dict(members)["pruneofa-archive.json"]
    version1 = json.loads(index)
    version1["version"] = 1
    for entry in version1["files"]:
        entry.pop("nonzero", None)
    data = [m for m in members if m[0] != "pruneofa-archive.json"]
    data.append(("pruneofa-archive.json", json.dumps(version1).encode()))
    old = tmp_path / "old.tar.xz"
    old.write_bytes(_xz(_tar(*(_member(name, content) for name, content in data))))
    code, err = _restore(old, tmp_path / "back", capsys)
    assert code == 0, err
    assert (tmp_path / "back" / "model.onnx").read_bytes() == (model_folder / "model.onnx").read_bytes()


# --- links out of the folder ----------------------------------------------------------------------------


def test_packaging_refuses_links_out_of_the_folder(model_folder, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's private key")
    (model_folder / "notes.txt").symlink_to(secret)
    code = main(["package", str(model_folder), "--format", "archive", "--output", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "outside" in err and "--skip-outside-links" in err and not (tmp_path / "a").exists()
    result = package_model(
        model_folder,
        package_config(format="archive", output=tmp_path / "b", skip_outside_links=True),
        quiet=True,
    )
    names = [name for name, _ in _members(next(result.output.glob("*.tar.xz")))]
    assert "files/notes.txt" not in names and "files/config.json" in names
    assert all(b"private key" not in content for _, content in _members(next(result.output.glob("*.tar.xz"))))


def test_links_inside_the_folder_are_followed(model_folder, tmp_path):
    (model_folder / "tokenizer.json").rename(model_folder / "real-tokenizer.json")
    (model_folder / "tokenizer.json").symlink_to("real-tokenizer.json")
    result = package_model(model_folder, package_config(format="archive", output=tmp_path / "a"), quiet=True)
    files = dict(_members(next(result.output.glob("*.tar.xz"))))
    assert files["files/tokenizer.json"] == files["files/real-tokenizer.json"]


def test_a_fifo_in_the_folder_is_refused_not_read(model_folder, tmp_path, capsys):
    os.mkfifo(model_folder / "pipe")
    code = main(["package", str(model_folder), "--format", "archive", "--output", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "not a regular file" in err


def test_a_repository_never_copies_a_linked_file_from_outside(export_once, tmp_path, capsys):
    import shutil

    folder = tmp_path / "exported"
    shutil.copytree(export_once("bert", "text-classification")["onnx"].output, folder)
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": "the user\'s token"}')
    (folder / "tokenizer_config.json").unlink()
    (folder / "tokenizer_config.json").symlink_to(secret)
    for format in ("ovms", "triton"):
        code = main(["package", str(folder), "--format", format, "--output", str(tmp_path / format)])
        assert code == 2 and "outside" in capsys.readouterr().err
        result = package_model(
            folder,
            package_config(format=format, output=tmp_path / f"{format}-skip", skip_outside_links=True),
            quiet=True,
        )
        copied = [p for p in result.output.rglob("*") if p.is_file()]
        assert copied and all(b"the user's token" not in p.read_bytes() for p in copied)
        assert not [p for p in copied if p.name == "tokenizer_config.json"]


def test_restoring_writes_only_inside_the_target(model_folder, tmp_path, capsys):
    packed = _archive(model_folder, tmp_path / "dist")
    before = {p for p in tmp_path.rglob("*")}
    code, err = _restore(packed, tmp_path / "back", capsys)
    assert code == 0, err
    after = {p for p in tmp_path.rglob("*")}
    assert {p for p in after - before if not p.is_relative_to(tmp_path / "back")} == set()


def test_every_member_io_read_stays_small(model_folder, tmp_path):
    """The restore streams: no read of the archive asks for a whole weight file at once."""
    from pruneofa.deploy.packaging import archive_scan

    calls: list[int] = []
    original = archive_scan.BoundedReader.read

    def spy(self, size=-1):
        calls.append(size)
        return original(self, size)

    packed = _archive(model_folder, tmp_path / "dist")
    archive_scan.BoundedReader.read = spy
    try:
        unpack_archive(packed, tmp_path / "back", quiet=True)
    finally:
        archive_scan.BoundedReader.read = original
    assert calls and max(calls) <= 8 << 20


def test_a_bytes_io_archive_round_trip(model_folder, tmp_path):
    """Sanity: what the crafting helpers build is what tarfile reads."""
    tar_bytes = _tar(_member("files/a", GOOD))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert tar.extractfile("files/a").read() == GOOD


@pytest.mark.parametrize("flag", ["--sign", "--verify"])
def test_a_device_or_large_file_given_as_a_key_is_refused_unread(model_folder, tmp_path, capsys, flag):
    """Issue 28.4: ``--verify /dev/zero`` read the whole device before the 64 KiB check (MemoryError after
    5.4 GB); a device is refused before a byte is read, and a large file after at most 64 KiB + 1 bytes."""
    archive = _archive(model_folder, tmp_path / "dist")
    big = tmp_path / "big.pem"
    big.write_bytes(b"-" * (1 << 20))

    def run(key: str) -> tuple[int, str]:
        if flag == "--sign":
            args = [str(model_folder), "--format", "archive", "--output", str(tmp_path / "out")]
        else:
            args = [str(archive), "--format", "folder", "--output", str(tmp_path / "out")]
        code = main(["package", *args, "--quiet", flag, key])
        return code, capsys.readouterr().err

    code, err = run(str(big))
    assert code == 2 and "over 64 KiB" in err and flag in err and len(err.strip().splitlines()) == 1, err
    # /dev/zero in a child whose address space is capped at 4 GiB: reading it whole fails there quickly
    args = (
        [str(model_folder), "--format", "archive"]
        if flag == "--sign"
        else [str(archive), "--format", "folder"]
    )
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from pruneofa.cli import main; sys.exit(main(sys.argv[1:]))"]
        + ["package", *args, "--output", str(tmp_path / "out"), "--quiet", flag, "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )
    err = child.stderr.strip()
    assert child.returncode == 2 and "not a regular file" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
