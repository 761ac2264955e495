"""Build the C++ extension against the installed ``openvino`` wheel, into a cache keyed by what it depends on.

Why a cache and not a wheel: the library must match the exact OpenVINO it is loaded into (its ABI and
versioned ``libopenvino.so.XXXX``), so it is built on the machine, once, by CMake with the wheel's own
``openvino/cmake`` folder (``OpenVINOConfig.cmake``, ``TBBConfig.cmake``).

Cache: ``$PRUNEOFA_KERNELS_CACHE`` or ``~/.cache/pruneofa/kernels``, one folder per key; the key hashes
the C++ sources and CMakeLists, the OpenVINO version, the compiler's ``--version`` line and the CPU
architecture, so editing a source or upgrading OpenVINO triggers a rebuild and nothing stale is loaded.
A build goes to a temporary folder and is renamed into place (atomic), under a file lock, so concurrent
processes neither collide nor see a half-written library.

``python -m pruneofa.kernels.build`` builds (``--force`` rebuilds, ``--driver`` also builds and runs
the sanitizer test driver); when it cannot build it prints one warning line and exits 0, so set-up never
fails because of it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
LIBRARY_NAME = "libpruneofa_kernels.so"
DRIVER_NAME = "test_spmm"


class BuildError(RuntimeError):
    """The extension could not be built (no compiler, no CMake, a compile error): the message says which."""


def cache_root() -> Path:
    env = os.environ.get("PRUNEOFA_KERNELS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pruneofa" / "kernels"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx) or (cxx if Path(cxx).is_file() else None)
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@functools.lru_cache(maxsize=8)
def _compiler_identity(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return cxx
    return f"{cxx} {(out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ''}"


def openvino_cmake_dir() -> Path:
    import openvino

    return Path(openvino.__file__).resolve().parent / "cmake"


def _openvino_version() -> str:
    import openvino

    return openvino.get_version() if hasattr(openvino, "get_version") else openvino.__version__


def source_files() -> list[Path]:
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in {".cpp", ".hpp", ".inl", ".txt"})


def build_key(cxx: str | None = None) -> str:
    """Hash of everything the binary depends on (sources, OpenVINO version, compiler, architecture)."""
    cxx = cxx or _compiler() or "none"
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_openvino_version().encode() + b"\0")
    digest.update(_compiler_identity(cxx).encode() + b"\0" + platform.machine().encode())
    return digest.hexdigest()[:16]


def cached_library() -> Path | None:
    """The built library for the current key, or None (never builds)."""
    path = cache_root() / build_key() / LIBRARY_NAME
    return path if path.is_file() else None


@contextlib.contextmanager
def _locked(root: Path, key: str) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{tail}")


def _cmake_build(target_dir: Path, artifact: str, options: list[str]) -> Path:
    """Configure and build into ``target_dir`` (atomically) unless ``artifact`` is already there."""
    final = target_dir / artifact
    if final.is_file():
        return final
    cxx = _compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (set CXX or install g++)")
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake not found (install cmake >= 3.16)")
    with _locked(target_dir.parent, target_dir.name):
        if final.is_file():
            return final
        work = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}-", dir=target_dir.parent))
        try:
            build_dir = work / "build"
            ov_cmake = str(openvino_cmake_dir())
            _run(
                [cmake, "-S", str(SOURCE_DIR), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_CXX_COMPILER={cxx}", f"-DOpenVINO_DIR={ov_cmake}", f"-DTBB_DIR={ov_cmake}", *options],
                work, "cmake configure",
            )  # fmt: skip
            _run(
                [cmake, "--build", str(build_dir), "-j", str(max(1, os.cpu_count() or 1))],
                work,
                "cmake build",
            )
            target_dir.mkdir(parents=True, exist_ok=True)
            tmp = target_dir / f".{artifact}.{os.getpid()}"
            shutil.copy2(build_dir / artifact, tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def build(force: bool = False) -> Path:
    """Build the extension for the current key (a no-op when cached) and return its path; raises BuildError."""
    target = cache_root() / build_key()
    if force and (target / LIBRARY_NAME).exists():
        (target / LIBRARY_NAME).unlink()
    try:
        return _cmake_build(target, LIBRARY_NAME, ["-DPRUNEOFA_EXTENSION=ON", "-DPRUNEOFA_TEST_DRIVER=OFF"])
    except ImportError as exc:
        raise BuildError(f"openvino is not importable: {exc}") from exc


def build_test_driver(sanitize: bool = True) -> Path:
    """Build the standalone kernel test driver (ASan + UBSan by default; no OpenVINO needed)."""
    target = cache_root() / f"{build_key()}-driver{'-asan' if sanitize else ''}"
    return _cmake_build(
        target,
        DRIVER_NAME,
        [
            "-DPRUNEOFA_EXTENSION=OFF",
            "-DPRUNEOFA_TEST_DRIVER=ON",
            f"-DPRUNEOFA_SANITIZE={'ON' if sanitize else 'OFF'}",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pruneofa.kernels.build", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache holds this key")
    parser.add_argument("--driver", action="store_true", help="also build and run the sanitizer test driver")
    args = parser.parse_args(argv)
    try:
        path = build(force=args.force)
        print(f"pruneofa kernels: built {path}")
        if args.driver:
            driver = build_test_driver()
            proc = subprocess.run([str(driver)], capture_output=True, text=True, check=False)
            print(
                f"pruneofa kernels: {proc.stdout.strip().splitlines()[-1] if proc.stdout else proc.stderr[-300:]}"
            )
            return proc.returncode
    except (BuildError, OSError) as exc:
        first = str(exc).splitlines()[0]
        print(
            f"pruneofa kernels: WARNING: sparse kernels not built ({first}); models run dense",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
