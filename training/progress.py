"""Step progress of a training run: step/total, pace, ETA and the logged losses, in a terminal and in logs.

The command line quiets transformers (``TRANSFORMERS_VERBOSITY=error``), which also turns the Trainer's
own tqdm bar off and leaves its ``PrinterCallback`` printing bare loss dictionaries. Runs here take hours,
so every training stage instead gets:

* in a terminal (stderr is a TTY): a tqdm bar with step/total and ETA, and one readable line per logging
  step written above it;
* otherwise (logs, CI, ``nohup``): the same line per logging step through the ``pruneofa`` logger, e.g.
  ``[  84.0s] prune: step 40/300 (13 %) · 2.10 s/step · ETA 9m06s · loss 3.214 · kd 1.020 · sparsity 0.45``.

The pace is measured from the steps this process ran (a resumed run does not count the steps it skipped).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from pruneofa.core.progress import format_duration, progress_logger

# Logged keys shown on the line, in this order, with their short names; others are left to report_to.
_SHOWN = (
    ("loss", "loss"),
    ("mlm_loss", "mlm"),
    ("task_loss", "task"),
    ("kd_loss", "kd"),
    ("hidden_loss", "hidden"),
    ("pooler_loss", "pooler"),
    ("sparsity", "sparsity"),
    ("learning_rate", "lr"),
)


def _value(name: str, value: float) -> str:
    if name == "lr":
        return f"{value:.2e}"
    if name == "sparsity":
        return f"{value:.3f}"
    return f"{value:.4g}"


def progress_line(kind: str, step: int, total: int, pace: float | None, logs: dict[str, Any]) -> str:
    """One progress line: stage, step/total and percentage, seconds per step, ETA, the shown losses."""
    parts = [f"{kind}: step {step}/{total} ({100 * step / max(1, total):.0f} %)"]
    if pace is not None:
        parts.append(f"{pace:.2f} s/step")
        parts.append(f"ETA {format_duration(pace * max(0, total - step))}")
    for key, short in _SHOWN:
        value = logs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{short} {_value(short, float(value))}")
    return " · ".join(parts)


class StepProgressCallback(TrainerCallback):
    """Replaces the Trainer's bare log printing with :func:`progress_line`, and shows a bar in a terminal."""

    def __init__(self, kind: str, *, terminal: bool | None = None) -> None:
        self.kind = kind
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._bar: Any = None
        self._start_step = 0
        self._start_time = 0.0
        self._started = time.perf_counter()

    def pace(self, step: int) -> float | None:
        """Seconds per step over the steps this process has run, or None before the first one."""
        done = step - self._start_step
        return (time.perf_counter() - self._start_time) / done if done > 0 else None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start_step = state.global_step
        self._start_time = time.perf_counter()
        if self.terminal and state.is_world_process_zero:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc=self.kind,
                unit="step",
                dynamic_ncols=True,
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        line = progress_line(
            self.kind, state.global_step, state.max_steps, self.pace(state.global_step), logs
        )
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            elapsed = time.perf_counter() - self._started
            progress_logger().info("[%6.1fs] %s", elapsed, line)

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def install_step_progress(trainer: Any, kind: str) -> StepProgressCallback:
    """Swap the Trainer's printing callbacks for one :class:`StepProgressCallback` and return it."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    callback = StepProgressCallback(kind)
    trainer.add_callback(callback)
    return callback
