"""Knowledge distillation losses: the student learns the task and the teacher's softened outputs.

    loss = alpha_task * task_loss + alpha_kd * T^2 * KL(p_teacher^T || p_student^T)

with p^T = softmax(logits / T). The T^2 factor keeps the gradient scale independent of T (Hinton et
al. 2015); the direction of the KL (teacher as the target distribution) is the one every reference
implementation uses, Intel's included. Masked-LM distillation runs over all non-padding tokens, not only
the masked ones (the paper); question answering averages the start and end distributions; regression
(STS-B) distils with the squared error between the predicted scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class DistillationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(2.0, gt=0)
    alpha_task: float = Field(0.5, ge=0)
    alpha_kd: float = Field(0.5, ge=0)
    hidden_states: float = Field(0.0, ge=0, description="weight of an MSE loss on hidden states (0: off)")


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


def hidden_state_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean squared error between matching hidden states (same depth and width only)."""
    if len(student) != len(teacher) or student[-1].shape != teacher[-1].shape:
        raise ValueError(
            "hidden-state distillation needs a teacher of the same depth and width "
            f"({len(student)} states of {tuple(student[-1].shape)} vs {len(teacher)} of {tuple(teacher[-1].shape)})"
        )
    return sum(F.mse_loss(s.float(), t.float()) for s, t in zip(student, teacher, strict=True)) / len(student)


def combined_loss(task_loss: torch.Tensor, kd: torch.Tensor, config: DistillationConfig) -> torch.Tensor:
    return config.alpha_task * task_loss + config.alpha_kd * kd
