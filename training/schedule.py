"""When and how much to prune: the cubic sparsity schedule of Zhu & Gupta (2017), as the paper uses.

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_begin) / (t_end - t_begin))^3     for t_begin <= t <= t_end

Masks are recomputed every ``frequency`` steps between ``begin`` and ``end`` (and once more at ``end``
so the final sparsity is exact); from ``freeze`` on they never change again. The schedule is a pure
function of the step, so a run resumed from a checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CubicSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    final_sparsity: float = Field(ge=0.0, lt=1.0)
    begin_step: int = Field(0, ge=0)
    end_step: int = Field(ge=0)
    frequency: int = Field(100, ge=1)
    freeze_step: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> CubicSchedule:
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError(
                f"final_sparsity {self.final_sparsity} is below initial_sparsity {self.initial_sparsity}"
            )
        if self.end_step < self.begin_step:
            raise ValueError(f"end_step {self.end_step} is before begin_step {self.begin_step}")
        if self.freeze_step is not None and self.freeze_step < self.end_step:
            raise ValueError(f"freeze_step {self.freeze_step} is before end_step {self.end_step}")
        return self

    def sparsity(self, step: int) -> float:
        if step <= self.begin_step:
            return self.initial_sparsity
        if step >= self.end_step:
            return self.final_sparsity
        progress = (step - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress) ** 3

    def updates_at(self, step: int) -> bool:
        """Whether masks are recomputed at ``step`` (a global optimizer step, 0-based). The update at
        ``end_step`` always happens, so the final sparsity is exact even when ``freeze_step`` is
        ``end_step`` (a short run: 3 steps put both at step 2)."""
        if step < self.begin_step:
            return False
        if step == self.end_step:
            return True
        if self.freeze_step is not None and step >= self.freeze_step:
            return False
        if step <= self.end_step:
            return (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        # between end and freeze the sparsity is final, but the pattern may still move (paper)
        return (step - self.begin_step) % self.frequency == 0


def rewinding_lr_factor(schedule: CubicSchedule, total_steps: int, warmup_steps: int):
    """Learning-rate rewinding shaped like the reference's (Intel's Model-Compression-Research-Package,
    ``model_compression_research/api_utils.py::get_linear_rewinding_schedule_with_warmup``, enabled by
    ``--lr_rewind`` in ``research/prune-once-for-all/student_pruning.sh``).

    A linear warm-up, then one linear decay to zero at the end of training that runs on a clock which
    stands still during the sparsity ramp (``begin_step`` … ``end_step``) except inside each pruning
    interval: there the rate decays at the run's slope and rewinds at every mask update. So the rate
    stays within one interval's worth of decay of its peak while masks are being updated, then decays
    linearly over the remaining steps::

        clock(t) = t                                     before the ramp
                 = begin + (t - begin) mod frequency     during the ramp
                 = t - (end - begin)                     after it
        factor(t) = (total - (end - begin) - clock(t)) / (total - (end - begin) - warmup)

    With a warm-up inside the ramp the reference's factor reaches slightly above 1 (1.02 for its 1 %
    warm-up and 50 % ramp); here it is capped at 1, so the recipe's learning rate is the peak.
    Returns the factor for ``LambdaLR``.
    """
    ramp = schedule.end_step - schedule.begin_step
    decay_steps = max(1, total_steps - ramp - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if schedule.begin_step <= step < schedule.end_step:
            clock = schedule.begin_step + (step - schedule.begin_step) % schedule.frequency
        elif step >= schedule.end_step:
            clock = step - ramp
        else:
            clock = step
        return min(1.0, max(0.0, (total_steps - ramp - clock) / decay_steps))

    return factor


def two_phase_lr_factor(first_steps: int, total_steps: int, warmup_ratio: float, first_scale: float):
    """Two linear warm-up/decay schedules back to back, the first peaking at ``first_scale`` times the
    learning rate (teacher preparation: a new MLM head alone at a head learning rate, then the whole
    model). Each phase warms up over ``warmup_ratio`` of its own steps. Returns the factor for ``LambdaLR``."""

    def linear(step: int, length: int) -> float:
        warmup = max(1, round(warmup_ratio * length)) if warmup_ratio > 0 else 0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (length - step) / max(1, length - warmup))

    def factor(step: int) -> float:
        if step < first_steps:
            return first_scale * linear(step, first_steps)
        return linear(step - first_steps, total_steps - first_steps)

    return factor
