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
        raise InputError(f"invalid --{field.replace('_', '-')}: {message}" if field else message) from err
