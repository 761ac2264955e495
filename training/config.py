"""The training budget every training command shares (``pruneofa teacher | prune | finetune | qat``):
the public API of training and the one source of those commands' budget flags. The method itself
(schedule, sparsity, distillation, optimizer, QAT) lives in the recipe (:mod:`pruneofa.training.recipe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pruneofa.core.cliargs import cli
from pruneofa.core.errors import validated

# Teacher preparation (masked-LM) of a checkpoint without an MLM head: the new head first learns alone,
# encoder frozen, for this share of the steps, at this learning rate (a new layer on frozen features);
# the teacher command's --head-warmup / --head-learning-rate.
HEAD_WARMUP = 0.2
HEAD_LR = 1e-3


class HeadWarmupOptions(BaseModel):
    """The teacher command's head warm-up (masked-LM teacher from a checkpoint without an MLM head); the
    one source of ``--head-warmup`` / ``--head-learning-rate`` and their defaults."""

    model_config = ConfigDict(extra="forbid")

    head_warmup: float = Field(
        default=HEAD_WARMUP,
        ge=0,
        le=1,
        description="masked-LM teacher from a checkpoint without an MLM head: share of the steps that train "
        "the new head alone, encoder frozen, before the whole model (0: all from step 0)",
        json_schema_extra=cli(metavar="SHARE"),
    )
    head_learning_rate: float = Field(
        default=HEAD_LR,
        gt=0,
        description="learning rate of that head-only phase",
        json_schema_extra=cli(metavar="LR"),
    )


class TrainConfig(BaseModel):
    """Budget and bookkeeping shared by the training commands (the recipe holds the method)."""

    model_config = ConfigDict(extra="forbid")

    output: Path | None = Field(
        default=None, description="output folder", json_schema_extra=cli(default_text="runs/NAME-STAGE")
    )
    overwrite: bool = Field(default=False, description="replace a non-empty output folder")
    steps: int = Field(default=1000, ge=1, description="optimizer steps")
    batch_size: int = Field(default=32, ge=1, description="per-device batch size")
    seq_len: int = Field(default=64, ge=16, le=4096, description="tokens per example")
    learning_rate: float | None = Field(
        default=None, gt=0, description="learning rate", json_schema_extra=cli(default_text="the recipe's")
    )
    seed: int = Field(default=0, description="seed")
    train_limit: int | None = Field(default=None, ge=1, description="use only N training examples/blocks")
    eval_limit: int | None = Field(default=None, ge=1, description="evaluate on only N dev examples")
    save_steps: int = Field(default=200, ge=1, description="checkpoint every N steps (resume by re-running)")
    logging_steps: int = Field(default=20, ge=1, description="log loss, KD loss, sparsity, LR every N steps")
    report_to: list[str] = Field(
        default_factory=list,
        description="Trainer loggers, comma-separated (tensorboard, wandb, …) or none",
        json_schema_extra=cli(metavar="LOGGERS"),
    )
    mlm_probability: float = Field(
        default=0.15, gt=0, lt=1, description="share of tokens masked for masked-LM"
    )
    stride: int = Field(
        default=32, ge=8, description="SQuAD: overlap of the windows a long context is split into"
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return [] if value in (["none"], [""]) else value


def make_config(**options: Any) -> TrainConfig:
    """Build a :class:`TrainConfig` from keyword options; bad values are a one-line :class:`InputError`."""
    return validated(TrainConfig, **options)
