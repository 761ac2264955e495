"""Recipes: the pruning schedule, distillation and optimizer settings of a run, as a YAML file.

A recipe is validated into typed config before any work starts (so a bad one costs nothing), and it
is copied into the output folder, so a run can be repeated from its output alone (SparseML's idea).
Schedule points are *fractions of the run's total steps*, so the same recipe works for a 300-step run
on a laptop CPU and a 100k-step run on GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pruneofa.core.yamlfile import load_yaml_model
from pruneofa.training import preflight
from pruneofa.training.distill import DistillationConfig
from pruneofa.training.masks import PruningConfig
from pruneofa.training.schedule import CubicSchedule


class ScheduleFractions(BaseModel):
    """The cubic schedule with its steps given as fractions of the total."""

    model_config = ConfigDict(extra="forbid")

    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    final_sparsity: float = Field(ge=0.0, lt=1.0)
    begin: float = Field(default=0.0, ge=0.0, le=1.0)
    end: float = Field(default=0.5, ge=0.0, le=1.0)
    frequency: float = Field(default=0.01, gt=0.0, le=1.0)
    freeze: float | None = Field(default=0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleFractions:
        self.at(10_000)  # the same checks as the step-based schedule
        return self

    def at(self, total_steps: int) -> CubicSchedule:
        return CubicSchedule(
            initial_sparsity=self.initial_sparsity,
            final_sparsity=self.final_sparsity,
            begin_step=round(self.begin * total_steps),
            end_step=round(self.end * total_steps),
            frequency=max(1, round(self.frequency * total_steps)),
            freeze_step=None if self.freeze is None else round(self.freeze * total_steps),
        )


class OptimizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 5e-5: the reference's pruning run passes no --learning_rate, so transformers' default applies
    # (research/prune-once-for-all/student_pruning.sh in Intel's Model-Compression-Research-Package)
    learning_rate: float = Field(default=5e-5, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.01, ge=0, lt=1)
    # rewind the learning rate at every mask update during the ramp, the reference's shape
    # (pruneofa.training.schedule.rewinding_lr_factor)
    lr_rewinding: bool = False


class TransferStage(BaseModel):
    """Stage 1 of the two-stage QAT recipe: sparse transfer in FP32 with distillation."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=5e-5, gt=0)
    share: float = Field(
        default=0.5, gt=0, lt=1
    )  # of the run's steps; skipped when the input is a task model


class QATStage(BaseModel):
    """Stage 2: NNCF quantization-aware training with the sparsity pattern locked."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=1e-5, gt=0)  # NNCF's advice: a few epochs at a small learning rate
    calibration_samples: int = Field(default=300, ge=1)  # training examples for the initial scales
    preset: Literal["performance", "mixed"] = "performance"  # symmetric / asymmetric activations
    # Weights stay symmetric either way, so a pruned weight is the integer 0.
    overflow_fix: Literal["auto", "enable", "disable", "first-layer"] = "auto"
    smooth_quant: bool = True  # NNCF's transformer default; it rescales weights, zeros stay zeros


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    schedule: ScheduleFractions | None = None
    distillation: DistillationConfig = Field(default_factory=DistillationConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    transfer: TransferStage = Field(default_factory=TransferStage)
    qat: QATStage = Field(default_factory=QATStage)


def builtin_recipes() -> dict[str, Path]:
    return preflight.builtin_recipes()


def load_recipe(source: str | Path) -> Recipe:
    """A recipe from a YAML file or by built-in name (``pruneofa-90``); errors are one line."""
    return load_yaml_model(source, Recipe, what="recipe", builtins=builtin_recipes())


def dump_recipe(recipe: Recipe, path: Path) -> None:
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
