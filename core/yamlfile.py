"""YAML files validated into typed config (training recipes, run recipes): one loader, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pruneofa.core.errors import InputError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(source: str | Path, model: type[Model], *, what: str, builtins: dict[str, Path]) -> Model:
    """``source`` is a YAML file or the name of a built-in one; the first problem is a one-line error."""
    path = Path(source)
    if not path.is_file():
        if str(source) not in builtins:
            raise InputError(
                f"{what} {source} is neither a file nor a built-in {what} ({', '.join(sorted(builtins))})"
            )
        path = builtins[str(source)]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{what} {path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(raw, dict):
        raise InputError(f"{what} {path} must be a mapping of settings (name, …)")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(f"{what} {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from err
