"""Command-line flags generated from a pydantic config class.

The config classes are the public API (``export_model(model, ExportConfig(...))``); the ``pruneofa``
command is a view of them. Every flag's name, type, choices, default and help come from the config's
fields, so a default is written once and the CLI cannot drift from the Python API: argparse never holds
a default of its own (``argparse.SUPPRESS``), the config fills in whatever the user did not give.

A field may carry command-line options in ``json_schema_extra=cli(...)``: another flag name
(``targets`` → ``--target``), a metavar, a default text for fields whose default is computed (``None``
meaning "derived from the model"), ``hidden=True`` for fields the command line does not offer, or
``deprecated=("--old-name",)``: old flags that still set the field and print a one-line warning naming
the current flag.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pruneofa.core.errors import validated

CLI_KEY = "cli"


def cli(
    *,
    flag: str | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    hidden: bool = False,
    deprecated: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Command-line options of a config field, for ``Field(..., json_schema_extra=cli(...))``."""
    options = {
        "flag": flag,
        "metavar": metavar,
        "default_text": default_text,
        "hidden": hidden,
        "deprecated": list(deprecated),
    }
    return {CLI_KEY: {k: v for k, v in options.items() if v not in (None, False, [])}}


class _DeprecatedFlag(argparse.Action):
    """An old flag name: sets the same field as ``current`` and says once, on stderr, to use that."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, current: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.current = current

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"pruneofa: warning: {option_string} is deprecated; use {self.current}", file=sys.stderr)
        setattr(namespace, self.dest, values)


@dataclass(frozen=True)
class Command:
    """One ``pruneofa`` subcommand, defined by the component that owns the work it runs.

    ``add_arguments`` fills the subparser (mostly through :func:`add_config_arguments`); ``run`` gets the
    parsed namespace (with ``argv``, the command line as typed) and returns the exit code. Both import
    heavy libraries only inside themselves, so building the parser stays fast."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    epilog: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _options(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    options = extra.get(CLI_KEY) if isinstance(extra, dict) else None
    return options if isinstance(options, dict) else {}


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _scalar_type(annotation: Any) -> tuple[Callable[[str], Any], tuple[Any, ...] | None]:
    """The argparse ``type`` and ``choices`` of one value."""
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return type(choices[0]), choices
    if annotation in (int, float, str):
        return annotation, None
    if annotation is Path:
        return str, None  # the config turns it into a Path (and expands nothing behind the user's back)
    return str, None


def _list_type(item: Any, flag: str) -> Callable[[str], list[Any]]:
    convert, choices = _scalar_type(item)

    def parse(value: str) -> list[Any]:
        if value.strip().lower() == "none":
            return []
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{flag} needs at least one value")
        out = []
        for part in parts:
            try:
                converted = convert(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not a valid {getattr(convert, '__name__', 'value')}"
                ) from None
            if choices is not None and converted not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown value {part!r}; use {', '.join(map(str, choices))} (comma-separated)"
                )
            out.append(converted)
        return out

    return parse


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def field_default(info: FieldInfo) -> Any:
    """The value a field takes when the command line does not give it."""
    return info.get_default(call_default_factory=True)


def field_help(info: FieldInfo) -> str:
    """The field's description with its default appended, as ``--help`` shows it."""
    text = (info.description or "").strip()
    options = _options(info)
    if info.is_required():
        return text
    if "default_text" in options:
        default = options["default_text"]
    else:
        value = field_default(info)
        if value is None or value is False:  # an absent option or an off switch says enough
            return text
        default = _shown(value)
    return f"{text} (default {default})" if text else f"default {default}"


def flag_of(name: str, info: FieldInfo) -> str:
    return _options(info).get("flag") or "--" + name.replace("_", "-")


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: type[BaseModel],
    *,
    skip: Iterable[str] = (),
    required: Iterable[str] = (),
) -> None:
    """One flag per field of ``config`` (except ``skip`` and hidden ones), defaults left to the config.

    ``required`` makes flags required on the command line whose fields are optional in Python (a
    value the CLI cannot infer but a caller may leave out)."""
    skip, required = set(skip), set(required)
    for name, info in config.model_fields.items():
        options = _options(info)
        if name in skip or options.get("hidden"):
            continue
        flag = flag_of(name, info)
        annotation = _strip_optional(info.annotation)
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": field_help(info)}
        if "metavar" in options:
            kwargs["metavar"] = options["metavar"]
        if annotation is bool:
            if field_default(info) is True:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["action"] = "store_true"
            kwargs.pop("metavar", None)
        elif get_origin(annotation) in (list, Sequence, tuple):
            (item,) = get_args(annotation)[:1] or (str,)
            kwargs["type"] = _list_type(item, flag)
            kwargs.setdefault("metavar", "A,B")
        else:
            kwargs["type"], choices = _scalar_type(annotation)
            if choices is not None:
                kwargs["choices"] = choices
        if info.is_required() or name in required:
            kwargs["required"] = True
        parser.add_argument(flag, **kwargs)
        for old in options.get("deprecated", []):
            if "action" in kwargs:
                raise TypeError(f"{old}: a deprecated alias of a switch ({flag}) is not supported")
            alias = {k: v for k, v in kwargs.items() if k not in ("required", "help")}
            parser.add_argument(old, action=_DeprecatedFlag, current=flag, help=argparse.SUPPRESS, **alias)


def config_values(config: type[BaseModel], args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``config`` the user gave on the command line."""
    return {name: getattr(args, name) for name in config.model_fields if hasattr(args, name)}


def config_from_args(config: type[BaseModel], args: argparse.Namespace, **fixed: Any) -> Any:
    """Build ``config`` from the parsed flags (plus ``fixed`` values); bad values are one-line errors."""
    return validated(config, **{**config_values(config, args), **fixed})


def command_line(args: argparse.Namespace) -> list[str]:
    """The command line being run, as recorded in ``pruneofa.json`` (a pipeline stage records its own)."""
    return ["pruneofa", *getattr(args, "argv", [])]
