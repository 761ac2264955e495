"""The lazy public names of each component package are visible to static tools.

A package ``__init__`` loads its public names on first use (``pruneofa.core.lazy``), which a type checker
cannot follow; each also imports them under ``if TYPE_CHECKING:``. This test keeps that block and the
lazy table naming the same objects from the same modules, and checks every name resolves at run time.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "training": "pruneofa.training",
    "exporter": "pruneofa.exporter",
    "calibration": "pruneofa.calibration",
    "deploy": "pruneofa.deploy",
}


def _declared(folder: str) -> tuple[dict[str, str], dict[str, str]]:
    """(the lazy table, name → module of the TYPE_CHECKING imports) of one package ``__init__``."""
    tree = ast.parse((ROOT / folder / "__init__.py").read_text(encoding="utf-8"))
    lazy: dict[str, str] = {}
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            lazy = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module, ast.dump(statement)
                for alias in statement.names:
                    assert alias.asname in (None, alias.name), f"{folder}: {alias.name} renamed on import"
                    typed[alias.name] = statement.module
    return lazy, typed


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_type_checking_imports_match_the_lazy_table(folder):
    package = PACKAGES[folder]
    lazy, typed = _declared(folder)
    assert lazy, f"{folder}/__init__.py has no _EXPORTS table"
    expected = {name: f"{package}.{module}" for name, module in lazy.items()}
    assert typed == expected, (
        f"{folder}/__init__.py: the TYPE_CHECKING imports must name the objects of _EXPORTS, from the same modules"
    )


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_every_lazy_name_resolves(folder):
    package = importlib.import_module(PACKAGES[folder])
    lazy, _ = _declared(folder)
    for name, module in lazy.items():
        assert getattr(package, name) is getattr(
            importlib.import_module(f"{PACKAGES[folder]}.{module}"), name
        )
    assert package.__all__ == sorted(lazy)
