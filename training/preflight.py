"""Checks a training command makes before it imports torch: a wrong path, task or recipe name is refused in
well under a second with one line, instead of after the seconds that loading the training stack takes.

Everything here is cheap (paths, names, the built-in recipe folder's listing); whatever needs the model or
the data's contents is still checked where it is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pruneofa.core.data import looks_like_hub_id
from pruneofa.core.errors import InputError
from pruneofa.core.modelio import resolve_model_source
from pruneofa.core.tasks import get_task


def builtin_recipes(section: str | None = None) -> dict[str, Path]:
    """The recipes shipped in ``pruneofa.training.recipes`` (name → file), read without importing torch;
    with ``section`` (``schedule``, ``qat``), only those that define it: what that command can run."""
    import yaml

    folder = resources.files("pruneofa.training").joinpath("recipes")
    found = {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}
    if section is None:
        return dict(sorted(found.items()))
    return {
        name: path
        for name, path in sorted(found.items())
        if isinstance(data := yaml.safe_load(path.read_text(encoding="utf-8")), dict) and data.get(section)
    }


def check_recipe(recipe: str | None, command: str, section: str | None = None) -> None:
    """A recipe is an existing YAML file or a built-in name that ``command`` can run (one with ``section``)."""
    if recipe is None:
        return
    usable = builtin_recipes(section)
    if recipe in usable:
        return
    names = ", ".join(usable)
    if recipe in builtin_recipes():
        raise InputError(f"recipe {recipe} has no {section}; 'pruneofa {command}' takes one of: {names}")
    path = Path(recipe).expanduser()
    if path.is_file():
        return
    if path.suffix.lower() in (".yaml", ".yml") or "/" in recipe:
        raise InputError(f"recipe file {recipe} does not exist; check the path")
    raise InputError(f"unknown recipe {recipe!r}; give a YAML file or a built-in recipe name: {names}")


def check_model(model: str | None, what: str = "MODEL") -> None:
    """A model folder that exists (with a config.json), a hub id, or the embedded default."""
    try:
        resolve_model_source(model)
    except InputError as error:
        raise InputError(f"{what}: {error}") from None


def check_sources(sources: Sequence[str] | str | None, flag: str) -> None:
    """Every comma-separated local source exists; a string that is not a path must read as a hub id."""
    if sources is None:
        return
    parts = [sources] if isinstance(sources, str) else list(sources)
    for source in (s.strip() for part in parts for s in str(part).split(",") if s.strip()):
        if Path(source).expanduser().exists() or looks_like_hub_id(source):
            continue
        raise InputError(f"{flag} {source} does not exist; check the path (or give a hub dataset id)")


def check_task(task: str | None, data: str | None) -> None:
    if task is None:
        return
    get_task(task)
    if data is None:
        raise InputError(
            f"--task needs --data ({task}: a GLUE folder or file, SQuAD JSON, or a hub dataset id)"
        )
