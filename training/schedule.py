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
        """Whether masks are recomputed at ``step`` (a global optimizer step, 0-based)."""
        if step < self.begin_step or (self.freeze_step is not None and step >= self.freeze_step):
            return False
        if step <= self.end_step:
            return (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        # between end and freeze the sparsity is final, but the pattern may still move (paper)
        return (step - self.begin_step) % self.frequency == 0


def rewinding_lr_factor(schedule: CubicSchedule, total_steps: int, warmup_steps: int):
    """Learning-rate rewinding coupled to the pruning frequency (the paper's option).

    Linear warm-up; then, while masks are being updated (up to ``end_step``), the learning rate decays
    linearly from its peak to zero over every pruning interval and rewinds to the peak at each mask
    update, so the network recovers from every pruning step with a fresh schedule; after ``end_step``
    it decays linearly to zero at the end of training. Returns the factor for ``LambdaLR``.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if schedule.begin_step <= step < schedule.end_step:
            position = (step - schedule.begin_step) % schedule.frequency
            return 1.0 - position / schedule.frequency
        start = max(schedule.end_step, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - start))

    return factor
