"""Knowledge distillation losses: the student learns the task and the teacher's softened outputs.

    loss = alpha_task * task_loss + alpha_kd * T^2 * KL(p_teacher^T || p_student^T)
           [+ hidden_states * MSE(hidden states)] [+ pooler * MSE(pooler outputs)]

with p^T = softmax(logits / T). The T^2 factor keeps the gradient scale independent of T (Hinton et
al. 2015); the direction of the KL (teacher as the target distribution) is the one every reference
implementation uses, Intel's included. Masked-LM distillation runs over all non-padding tokens, not only
the masked ones (the paper; ``HFTeacherWrapper._masked_outputs`` in Intel's package); question answering
averages the start and end distributions; regression (STS-B) distils with the squared error.

Cheaper masked-LM options (departures from the paper, measured in docs/training.md):

- ``top_k``: the KL over the teacher's ``k`` most likely tokens at each position, both distributions
  renormalised over those ``k``; the student then needs ``k`` logits per token instead of the whole
  vocabulary (with ``k`` = vocabulary size it *is* the full KL);
- ``alpha_kd: 0`` with ``hidden_states > 0``: hidden-state distillation alone, the teacher's MLM head
  is never run.

``teacher_precision: bfloat16`` runs the frozen teacher's forward under bf16 autocast (every task kind);
its outputs are compared in float32 as always. A speed option, not a method change: the targets move by
bf16 rounding (top-1 agreement ~97 % on MLM logits). Where the CPU has no native bf16 (AVX512_BF16 or
AMX) it would be slower than float32, so the teacher stays float32 there with one warning.
``teacher_precision: auto`` (the fast recipes) picks bf16 where it is native and float32 elsewhere,
silently: the choice is the recipe's, not a request that the hardware refused.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class DistillationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=2.0, gt=0)
    alpha_task: float = Field(default=0.5, ge=0)
    alpha_kd: float = Field(
        default=0.5, ge=0, description="weight of the logit KL (0: no logit distillation)"
    )
    hidden_states: float = Field(
        default=0.0, ge=0, description="weight of an MSE loss on hidden states (0: off)"
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        description="masked-LM: KL over the teacher's top-k tokens per position (null: all)",
    )
    pooler: float = Field(
        default=0.0,
        ge=0,
        description="masked-LM: weight of an MSE loss between pooler outputs, when both models have one "
        "(the training signal the reference's NSP distillation gives the pooler; 0: off)",
    )
    teacher_precision: Literal["float32", "bfloat16", "auto"] = Field(
        default="float32",
        description="precision of the frozen teacher's forward (bfloat16: autocast, where the CPU or GPU "
        "runs bf16 natively; its outputs are compared in float32; auto: bfloat16 where native, float32 "
        "elsewhere without a warning)",
    )


def kd_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(teacher || student) over the last axis, averaged over the positions where ``mask`` is 1."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_position = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)
    if mask is not None:
        mask = mask.to(per_position.dtype)
        per_position = (per_position * mask).sum() / mask.sum().clamp_min(1.0)
    else:
        per_position = per_position.mean()
    return per_position * temperature**2


def top_k_kd_divergence(
    student_features: torch.Tensor,
    decoder_weight: torch.Tensor,
    decoder_bias: torch.Tensor | None,
    teacher_logits: torch.Tensor,
    k: int,
    temperature: float,
) -> torch.Tensor:
    """:func:`kd_divergence` restricted to the teacher's ``k`` most likely tokens of every row.

    ``student_features`` (rows × hidden) are the inputs of the student's output layer; only the ``k``
    logits that are compared are computed (``features · W[index] + b[index]``), which is the saving: the
    student never forms its rows × vocabulary logits. Both distributions are renormalised over the ``k``
    tokens, so with ``k`` ≥ the vocabulary size this equals the full KL.
    """
    top, index = teacher_logits.topk(min(k, teacher_logits.shape[-1]), dim=-1)
    student = torch.einsum("nh,nkh->nk", student_features, decoder_weight[index])
    if decoder_bias is not None:
        student = student + decoder_bias[index]
    return kd_divergence(student, top, temperature)


def kd_loss(
    kind: str,
    student: dict[str, torch.Tensor],
    teacher: dict[str, torch.Tensor],
    temperature: float,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The distillation term for a task kind: ``classification``, ``regression``, ``question-answering``
    or ``masked-lm`` (token-level, over non-padding tokens)."""
    if kind == "regression":
        return F.mse_loss(student["logits"].float(), teacher["logits"].float())
    if kind == "question-answering":
        return 0.5 * (
            kd_divergence(student["start_logits"], teacher["start_logits"], temperature)
            + kd_divergence(student["end_logits"], teacher["end_logits"], temperature)
        )
    if kind == "masked-lm":
        return kd_divergence(student["logits"], teacher["logits"], temperature, attention_mask)
    return kd_divergence(student["logits"], teacher["logits"], temperature)


def hidden_state_loss(
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, ...],
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error between matching hidden states (same depth and width only), averaged over the
    non-padding positions where ``attention_mask`` is given (padding carries no signal; the reference
    masks it too)."""
    if len(student) != len(teacher) or student[-1].shape != teacher[-1].shape:
        raise ValueError(
            "hidden-state distillation needs a teacher of the same depth and width "
            f"({len(student)} states of {tuple(student[-1].shape)} vs {len(teacher)} of {tuple(teacher[-1].shape)})"
        )
    keep = attention_mask.bool() if attention_mask is not None else None
    if keep is not None and bool(keep.all()):
        keep = None  # every position counts (packed pre-training blocks): no gather, no scatter backward
    losses = []
    for s, t in zip(student, teacher, strict=True):
        if keep is not None:
            s, t = s[keep], t[keep]
        losses.append(F.mse_loss(s.float(), t.float()))
    return torch.stack(losses).sum() / len(student)


def combined_loss(task_loss: torch.Tensor, kd: torch.Tensor, config: DistillationConfig) -> torch.Tensor:
    return config.alpha_task * task_loss + config.alpha_kd * kd
