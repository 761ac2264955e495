"""The benchmark makes idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) before PyTorch loads, unless
the user chose a policy or PyTorch was already imported, and says which (deploy.benchmarking.measurement)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
{before}
from pruneofa.deploy.benchmarking.measurement import passive_openmp
print(passive_openmp())
print(passive_openmp())
print(os.environ.get("OMP_WAIT_POLICY"))
print("torch" in sys.modules)
"""


def _run(before: str = "", **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before=before)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-4:]


def test_the_policy_is_set_passive_before_pytorch_loads_and_reported_the_same_twice():
    first, second, value, torch_loaded = _run()
    assert "OMP_WAIT_POLICY=PASSIVE" in first and "sleep instead of spinning" in first
    assert second == first and value == "PASSIVE" and torch_loaded == "False"


def test_a_policy_the_user_set_is_kept():
    first, _, value, _ = _run(OMP_WAIT_POLICY="ACTIVE")
    assert first == "OpenMP: OMP_WAIT_POLICY=ACTIVE (as set)" and value == "ACTIVE"


def test_after_pytorch_is_imported_nothing_is_changed_and_the_line_says_how_to():
    pytest.importorskip("torch")
    first, _, value, _ = _run(before="import torch")
    assert "left at its default" in first and "OMP_WAIT_POLICY=PASSIVE before importing" in first
    assert value == "None"


def test_the_benchmark_command_sets_it_before_pytorch_is_imported(tmp_path):
    """Through the real command (which imports PyTorch with the benchmark): the line it prints first."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-m", "pruneofa", "benchmark", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "OpenMP: OMP_WAIT_POLICY=PASSIVE (idle PyTorch threads sleep" in out.stdout + out.stderr
