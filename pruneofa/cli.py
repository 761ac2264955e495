"""The ``pruneofa`` command: a dispatcher. Each component defines its own subcommands (its ``cli``
module, flags generated from its config classes); this module only collects them, parses the command line
and turns a :class:`~pruneofa.core.errors.PruneofaError` into one line and an exit code. Heavy libraries
are imported only inside the command that runs, so ``pruneofa --help`` answers at once."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pruneofa import __version__
from pruneofa.core.cliargs import Command
from pruneofa.core.errors import PruneofaError

# In the order ``pruneofa --help`` lists them: the pipeline's order, then the front's own commands.
COMMAND_MODULES = (
    "pruneofa.exporter.cli",  # export
    "pruneofa.calibration.cli",  # calibrate
    "pruneofa.deploy.cli",  # validate, benchmark, serve, package
    "pruneofa.training.cli",  # teacher, prune, finetune
    "pruneofa.commands",  # qat, run, info
)


def all_commands() -> list[Command]:
    commands: list[Command] = []
    for name in COMMAND_MODULES:
        commands.extend(importlib.import_module(name).COMMANDS)
    return commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pruneofa",
        description="Prune Once for All: sparse BERT-family models, exported and deployed on CPUs.",
    )
    parser.add_argument("--version", action="version", version=f"pruneofa {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in all_commands():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from pruneofa.core.progress import quiet_third_party_at_start

    quiet_third_party_at_start(quiet=bool(getattr(args, "quiet", False)))
    try:
        return args.handler(args)
    except PruneofaError as err:
        print(f"pruneofa {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"pruneofa {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``pruneofa info … | head``): stop quietly, as other command-line tools do.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
