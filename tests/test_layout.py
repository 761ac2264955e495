"""One import root and a layered import graph.

* Every module installs under ``pruneofa.``; the component folders stay at the repository root and
  setuptools maps them. A built wheel holds one top-level name, and outside the repository the old
  top-level names (``exporter``, ``deploy`` …) do not import while ``pruneofa.*`` and its package data do.
* The ground (``pruneofa.core``) imports only third-party code; components import only downward; nothing
  imports the command-line front. Checked over every import statement, function-level ones included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "core": "pruneofa.core",
    "training": "pruneofa.training",
    "exporter": "pruneofa.exporter",
    "calibration": "pruneofa.calibration",
    "kernels": "pruneofa.kernels",
    "deploy": "pruneofa.deploy",
    "pruneofa": "pruneofa",
}
# What each package may import of pruneofa (itself always). ``pruneofa`` alone is the root package,
# which holds nothing but the version; the front is every other module of the ``pruneofa/`` folder.
ALLOWED = {
    "pruneofa.core": {"pruneofa.core"},
    "pruneofa.kernels": {"pruneofa.core"},
    "pruneofa.training": {"pruneofa.core"},
    "pruneofa.exporter": {"pruneofa.core", "pruneofa.kernels"},
    "pruneofa.calibration": {"pruneofa.core", "pruneofa.exporter", "pruneofa.kernels"},
    "pruneofa.deploy": {"pruneofa.core", "pruneofa.exporter", "pruneofa.calibration", "pruneofa.kernels"},
}
FRONT = {"pruneofa.cli", "pruneofa.commands", "pruneofa.recipe_runner", "pruneofa.__main__"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level or None]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package_of(name: str) -> str | None:
    """The layer a pruneofa module name belongs to (``pruneofa.exporter.api`` → ``pruneofa.exporter``)."""
    for package in sorted(ALLOWED, key=len, reverse=True):
        if name == package or name.startswith(package + "."):
            return package
    if any(name == f or name.startswith(f + ".") for f in FRONT):
        return "front"
    return None


def test_every_module_imports_only_downward():
    violations = []
    for module, path in _modules().items():
        layer = _package_of(module)
        if layer in (None, "front"):
            continue  # the root package and the front may import anything
        for name in _imports(path, module):
            if not (name == "pruneofa" or name.startswith("pruneofa.")):
                continue
            target = _package_of(name)
            if name in ("pruneofa", "pruneofa.__version__"):
                continue  # the root package: the version string, nothing above
            if target == "front":
                violations.append(f"{module} imports the command-line front ({name})")
            elif target is not None and target != layer and target not in ALLOWED[layer]:
                violations.append(f"{module} ({layer}) imports {name} ({target}), which is not below it")
    assert not violations, "\n".join(violations)


def test_no_old_top_level_names_in_the_code():
    """Imports are ``pruneofa.exporter``, never ``exporter``, in code, tests and benchmarks alike."""
    old = {"exporter", "deploy", "training", "calibration", "kernels", "core"}
    offenders = []
    for path in [*ROOT.glob("*/**/*.py")]:
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for name in _imports(path, "x"):
            if name.split(".")[0] in old:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, "\n".join(offenders)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return next(out.glob("pruneofa-*.whl"))


def test_wheel_installs_one_top_level_name_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pruneofa"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"pruneofa"}
    for data in (
        "pruneofa/training/recipes/pruneofa-90.yaml",
        "pruneofa/run_recipes/pipeline-small.yaml",
        "pruneofa/core/resources/parity_samples.json",
        "pruneofa/kernels/csrc/CMakeLists.txt",  # the sparse kernels are built where they are installed
    ):
        assert data in names


def test_outside_the_repository_only_pruneofa_names_import(wheel, tmp_path):
    """The wheel's contents on a clean path (no site hooks, so no editable install), run from elsewhere."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = """
import importlib, sys
for old in ("exporter", "deploy", "training", "calibration"):
    try:
        importlib.import_module(old)
    except ImportError:
        pass
    else:
        sys.exit(f"'import {old}' worked; it must not")
import pruneofa.exporter.config, pruneofa.calibration.config, pruneofa.deploy.config, pruneofa.training.config
import pruneofa.kernels, pruneofa.core.runtime
from pruneofa.training.recipe import load_recipe
from pruneofa.recipe_runner import load_run_recipe
from pruneofa.core.runtime import load_parity_samples
assert pruneofa.__file__.startswith(sys.argv[1]), pruneofa.__file__
assert load_recipe("pruneofa-90").schedule.final_sparsity == 0.9
assert load_run_recipe("pipeline-small").stages
assert load_parity_samples()["sentences"]
from pruneofa.cli import build_parser
build_parser()
print("ok")
"""
    deps = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, str(site)],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr[-2000:]
