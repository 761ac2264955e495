"""Progress lines and third-party quiet, on :mod:`logging`, for every command.

* :class:`Progress`: one line per step on stderr, prefixed with the seconds since the command began,
  so a user sees where the time goes; ``quiet=True`` drops them. Lines go through the ``pruneofa``
  logger, so an application embedding pruneofa can route or silence them like any other log.
* :func:`quiet_libraries`: lowers the log level of chatty libraries for a block and, where asked,
  swallows what they print and warn (exporters print pages of diagnostics); the captured text is
  returned so that an error message can quote its last lines.
* :func:`quiet_third_party_at_start`: the process-wide settings the command line applies once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator

LOGGER_NAME = "pruneofa"
# Libraries whose INFO/WARNING chatter is noise to a user of the command line (real errors still show).
CHATTY = (
    "nncf",
    "optimum",
    "transformers",
    "torch.onnx",
    "torch.export",
    "torch._dynamo",
    "torch.jit",
    "onnxscript",
    "openvino",
    "torchao",
    "torch.utils._pytree",
)


class _CurrentStderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest and notebooks swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed stream must not break the work being reported
            self.handleError(record)


def format_duration(seconds: float) -> str:
    """``3725`` → ``1h02m05s``; ``65`` → ``1m05s``; ``4.2`` → ``4s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_logger() -> logging.Logger:
    """The ``pruneofa`` logger, with a plain stderr handler unless the application configured one."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class Progress:
    """``progress("step")`` → ``[  1.2s] step`` on stderr; ``progress.say("text")`` without the clock."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()
        self._logger = progress_logger()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, message: str) -> None:
        if not self.quiet:
            self._logger.info("[%6.1fs] %s", self.elapsed, message)

    def say(self, message: str) -> None:
        if not self.quiet:
            self._logger.info("%s", message)


@contextlib.contextmanager
def quiet_libraries(*names: str, level: int = logging.ERROR, capture: bool = False) -> Iterator[io.StringIO]:
    """Lower ``names`` (default: :data:`CHATTY`) to ``level`` for the block; with ``capture``, also swallow
    stdout and warnings. Yields the captured stdout (empty without ``capture``)."""
    loggers = [logging.getLogger(name) for name in (names or CHATTY)]
    levels = [logger.level for logger in loggers]
    chatter = io.StringIO()
    for logger in loggers:
        logger.setLevel(level)
    try:
        if capture:
            with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield chatter
        else:
            yield chatter
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.setLevel(previous)


def quiet_third_party_at_start(quiet: bool = False) -> None:
    """What the command line sets once: no import-time chatter, no tokenizer fork warnings, and no
    progress bars that a library shows by default (transformers' "Loading weights" / "Writing model shards"
    per model, ``datasets``' map bars) in the middle of pruneofa's own output: ``TQDM_DISABLE=1`` changes
    tqdm's default only, so bars created with an explicit ``disable=`` (pruneofa's own, hub downloads)
    still show; a user who wants them all sets ``TQDM_DISABLE=0``. The bars NNCF draws with ``rich``
    ("Statistics collection", "Applying Smooth Quant") go to stderr like every other progress line, so
    stdout holds the report alone (``pruneofa calibrate … > report.txt``); ``quiet`` drops them."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("torchao", "torch.utils._pytree", "nncf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    rich_bars_to_stderr(quiet)


def rich_bars_to_stderr(quiet: bool = False) -> None:
    """Point ``rich``'s global console, which NNCF's progress bars draw on (stdout by default), at
    stderr; with ``quiet``, silence it. Nothing happens where rich is not installed."""
    try:
        from rich import get_console
    except ImportError:
        return
    console = get_console()
    console.stderr = True
    console.quiet = quiet
