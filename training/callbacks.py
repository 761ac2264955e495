"""``transformers.Trainer`` callbacks that drive pruning, so the training loop stays the library's own
(and runs unchanged under ``accelerate launch`` / ``torchrun``)."""

from __future__ import annotations

from transformers import TrainerCallback

from pruneofa.training.masks import PruningConfig, sparsity_by_module, update_masks
from pruneofa.training.schedule import CubicSchedule


class PruningCallback(TrainerCallback):
    """Recompute masks on the schedule's steps; log the current sparsity.

    The schedule is a function of ``state.global_step`` and the masks are buffers in the model's state
    dict, so a run resumed from a Trainer checkpoint continues with exactly the masks it had.
    """

    def __init__(self, config: PruningConfig, schedule: CubicSchedule) -> None:
        self.config = config
        self.schedule = schedule
        self.current = schedule.initial_sparsity

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if model is not None and self.schedule.updates_at(step):
            target = self.schedule.sparsity(step)
            if target > 0:
                update_masks(_unwrap(model), target, self.config)
            self.current = target

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # The last optimizer step may come after the end step: make the final sparsity exact.
        if (
            model is not None
            and state.global_step >= self.schedule.end_step
            and self.schedule.final_sparsity > 0
        ):
            freeze = self.schedule.freeze_step
            # the end step never began (the run ended on it): its update is still due, frozen or not
            if freeze is None or state.global_step < freeze or state.global_step == self.schedule.end_step:
                update_masks(_unwrap(model), self.schedule.final_sparsity, self.config)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is not None and model is not None:
            values = sparsity_by_module(_unwrap(model))
            entry = {
                "sparsity": round(sum(values.values()) / max(len(values), 1), 4),
                "target_sparsity": round(self.current, 4),
            }
            logs.update(entry)  # for the report_to loggers that run after this callback
            if state.log_history:  # the Trainer stored its copy before calling the callbacks
                state.log_history[-1].update(entry)


def _unwrap(model):
    return getattr(model, "module", model)


class SparsityLogCallback(TrainerCallback):
    """Log the mean sparsity of the pruned layers with every loss line, for runs whose pattern is locked
    (sparse transfer, QAT): the log, ``report_to`` loggers and the manifest's curve show it stayed put."""

    def __init__(self, config: PruningConfig | None = None) -> None:
        self.config = config

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None or model is None:
            return
        values = sparsity_by_module(_unwrap(model), self.config)
        if not values:
            return
        entry = {"sparsity": round(sum(values.values()) / len(values), 4)}
        logs.update(entry)
        if state.log_history:
            state.log_history[-1].update(entry)


class HeadWarmupCallback(TrainerCallback):
    """Teacher preparation for a checkpoint without an MLM head: for the first ``steps`` optimizer steps
    only the new head's parameters (``head``, by name) learn; the encoder, embeddings included, is frozen.

    Freezing is ``requires_grad = False``, set again at every step from ``state.global_step`` (so a
    resumed run freezes exactly as an uninterrupted one): frozen weights get no gradient, so the encoder's
    backward pass is skipped and AdamW leaves them untouched (no update, no weight decay). The decoder of a
    tied head *is* the word-embedding matrix, so it stays frozen too; the head's transform and its output
    bias are what the warm-up trains."""

    def __init__(self, head: set[str], steps: int) -> None:
        self.head = head
        self.steps = steps

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        frozen = state.global_step < self.steps
        for name, parameter in _unwrap(model).named_parameters():
            parameter.requires_grad_(name in self.head or not frozen)
