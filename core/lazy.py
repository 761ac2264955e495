"""Lazy public names for a package ``__init__``: ``from pruneofa.exporter import export_model`` works,
while ``import pruneofa.exporter.config`` (what the command line needs to build its flags) does not
import torch. A package assigns ``__getattr__ = lazy_exports(__name__, {...})``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """``names`` maps a public name to the submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
