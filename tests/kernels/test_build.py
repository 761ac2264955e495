"""Building and loading: the sanitizer test driver, cache keys, and the no-compiler fallback to dense."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import random_sparse  # noqa: E402


def have_toolchain() -> bool:
    from pruneofa.kernels import build

    return build._compiler() is not None and shutil.which("cmake") is not None


@pytest.mark.skipif(not have_toolchain(), reason="no C++ compiler or cmake here")
def test_sanitizer_driver_checks_every_isa():
    """ASan + UBSan build of the kernels with a driver comparing each ISA path to a naive reference."""
    from pruneofa.kernels import build

    driver = build.build_test_driver(sanitize=True)
    proc = subprocess.run([str(driver), "120"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "0 failures" in proc.stdout and "scalar" in proc.stdout


def test_cache_key_follows_sources_and_openvino(tmp_path, monkeypatch):
    from pruneofa.kernels import build

    copy = tmp_path / "csrc"
    shutil.copytree(build.SOURCE_DIR, copy)
    monkeypatch.setattr(build, "SOURCE_DIR", copy)
    key = build.build_key()
    assert build.build_key() == key
    (copy / "spmm_kernel.inl").write_text((copy / "spmm_kernel.inl").read_text() + "\n// edited\n")
    edited = build.build_key()
    assert edited != key
    monkeypatch.setattr(build, "_openvino_version", lambda: "2099.1")
    assert build.build_key() != edited
    monkeypatch.setenv("PRUNEOFA_KERNELS_CACHE", str(tmp_path / "cache"))
    assert build.cache_root() == tmp_path / "cache" and build.cached_library() is None


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """An empty cache and no usable compiler: the library cannot be had in this process."""
    from pruneofa.kernels import library

    monkeypatch.setenv("PRUNEOFA_KERNELS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.delenv("PRUNEOFA_KERNELS_LIBRARY", raising=False)
    library.reset()
    yield
    monkeypatch.undo()
    library.reset()


def test_no_compiler_runs_dense_with_one_warning(no_compiler, caplog):
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa import kernels

    rng = np.random.default_rng(0)
    w = random_sparse(rng, 16, 24, 0.9)
    x = ops.parameter([-1, 24], np.float32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(w), False, True).output(0)], [x])
    with caplog.at_level(logging.WARNING, logger="pruneofa.kernels"):
        assert not kernels.available()
        core = ov.Core()
        compiled, report = kernels.compile_sparse(core, model, {"INFERENCE_PRECISION_HINT": "f32"}, mode="on")
        compiled2, report2 = kernels.compile_sparse(core, model, {}, mode="auto")
        assert kernels.register(core) is False and kernels.isa() is None
    warnings = [r for r in caplog.records if r.name == "pruneofa.kernels" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "run dense" in warnings[0].getMessage()
    assert not report.sparse_layers and report.layers[0].reason == "kernels unavailable"
    assert "unavailable" in report.summary() and not report2.kernels_available
    xv = rng.standard_normal((3, 24)).astype(np.float32)
    np.testing.assert_allclose(compiled([xv])[0], xv @ w.T, atol=1e-4)


def test_build_command_never_fails(no_compiler, capsys):
    from pruneofa.kernels import build

    assert build.main([]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WARNING" in err[0] and "compiler" in err[0]


def test_isa_environment_variable_forces_a_path():
    """PRUNEOFA_KERNELS_ISA is read when the library loads (a fresh process); junk falls back to the best."""
    import os

    from kernel_helpers import require_kernels

    kernels = require_kernels()
    best = kernels.library.supported_isas()[-1]
    code = "from pruneofa import kernels; print(kernels.isa())"
    for wanted, expected in [("scalar", "scalar"), ("no-such-isa", best)]:
        env = {**os.environ, "PRUNEOFA_KERNELS_ISA": wanted}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.stdout.strip().splitlines()[-1] == expected, out.stderr[-2000:]
