"""Dev-set evaluation of a PyTorch model with the task's official metric (end of teacher/finetune)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pruneofa.core.metrics import compute_metrics
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
    model.eval()
    # After training on a GPU the model is still there: inputs follow it, outputs come back to the CPU.
    device = next(model.parameters()).device
    if task.kind == "question-answering":
        from pruneofa.core.qa import batches, postprocess_qa, prepare_qa_features

        features = prepare_qa_features(examples, tokenizer, max_length=seq_len, stride=stride)
        starts, ends = [], []
        for feed in batches(features, batch_size):
            out = model(**{k: torch.from_numpy(v).to(device) for k, v in feed.items()})
            starts.append(out.start_logits.float().cpu().numpy())
            ends.append(out.end_logits.float().cpu().numpy())
        return compute_metrics(task, postprocess_qa(examples, features, starts, ends), examples)
    predictions: list = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        columns = list(zip(*(e.texts for e in chunk), strict=True))
        encoded = tokenizer(*columns, padding=True, truncation=True, max_length=seq_len, return_tensors="pt")
        logits = model(**encoded.to(device)).logits.float().cpu().numpy()
        predictions += (
            logits.reshape(-1).tolist() if task.kind == "regression" else np.argmax(logits, -1).tolist()
        )
    return compute_metrics(task, predictions, [e.label for e in examples])
