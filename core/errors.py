"""Errors that the CLI turns into a one-line message and an exit code.

Every failure a user can cause (bad paths, wrong task, unsafe weights, …) is raised as a
:class:`PruneofaError` whose message names the problem *and* the fix, so that the CLI never has
to print a traceback for it. Exit code 2 means bad input; 1 means the work ran but a check failed.
"""

from __future__ import annotations


class PruneofaError(Exception):
    """A user-facing error: ``str(err)`` is the whole message, ``exit_code`` what the CLI returns."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(PruneofaError):
    """The input (model, task, options, output folder) cannot be used; nothing was written."""

    exit_code = 2


class CheckFailed(PruneofaError):
    """The work ran, but a check (output parity, sparsity preservation) did not pass."""

    exit_code = 1


def validated(config_class, /, **options):
    """Build a pydantic config, turning its first validation error into a one-line :class:`InputError`
    that names the command-line option (``--field-name``) and what is wrong with it."""
    from pydantic import ValidationError

    try:
        return config_class(**options)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not field:
            raise InputError(message) from err
        raise InputError(f"invalid {_flag(config_class, field)}: {message}") from err


def _flag(config_class, field: str) -> str:
    """The command-line flag of a config field (``targets`` → ``--target``; see ``core.cliargs.cli``)."""
    info = getattr(config_class, "model_fields", {}).get(field.split(".")[0])
    extra = getattr(info, "json_schema_extra", None)
    options = extra.get("cli") if isinstance(extra, dict) else None
    if isinstance(options, dict) and options.get("flag"):
        return options["flag"]
    return "--" + field.replace("_", "-")


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (libraries put the gist there)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def last_line(err: BaseException) -> str:
    """The last non-empty line (OpenVINO and ONNX Runtime put the cause last, after a stack of context)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
