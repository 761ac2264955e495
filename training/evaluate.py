"""Dev-set evaluation of a PyTorch model with the task's official metric (end of teacher/finetune),
through the evaluation routine every stage shares (:mod:`pruneofa.core.evaluation`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pruneofa.core.evaluation import evaluate as evaluate_model
from pruneofa.core.tasks import TaskSpec


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    task: TaskSpec,
    examples: list,
    *,
    seq_len: int,
    batch_size: int = 32,
    stride: int = 128,
) -> dict[str, float]:
    """The task's metrics (percent) of ``model`` on ``examples``, cut at ``seq_len`` tokens (SQuAD
    contexts in windows of ``seq_len`` overlapping by ``stride``)."""
    model.eval()
    # After training on a GPU the model is still there: inputs follow it, outputs come back to the CPU.
    device = next(model.parameters()).device
    names = ("start_logits", "end_logits") if task.kind == "question-answering" else ("logits",)

    def forward(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = model(**{k: torch.from_numpy(v).to(device) for k, v in feed.items()})
        return [getattr(out, name).float().cpu().numpy() for name in names]

    return evaluate_model(
        forward, task, examples, tokenizer, batch_size=batch_size, max_length=seq_len, stride=stride
    ).metrics
