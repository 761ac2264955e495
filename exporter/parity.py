"""Output parity: a candidate model against its reference, on real-looking and random inputs.

Inputs are the sentences, sentence pairs and question/context pairs kept in
``core/resources/parity_samples.json`` plus random token sequences of random length, batched with
padding so that the dynamic batch and sequence axes and the attention mask are exercised. What is
compared, and the bound it must meet, fits the export task and is defined in one place,
:mod:`pruneofa.core.fidelity`: label agreement for classification, per-token labels for token
classification, answer spans for question answering, cosine similarity of mean-pooled embeddings and
nearest neighbours for feature extraction, top-k overlap for fill-mask; raw output errors on real
(non-padding) positions are reported for every output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pruneofa.core.fidelity import ParityMeter, ParityOptions
from pruneofa.core.fidelity import failure_reason as _failure_reason
from pruneofa.core.inference import INFERENCE_TASKS
from pruneofa.core.manifest import ParityReport
from pruneofa.core.runtime import load_parity_samples, model_inputs
from pruneofa.core.support import ExportTask

PARITY_MAX_LENGTH = 128
PARITY_BATCH_SIZE = 4


class ParityBatches(list):
    """The parity batches; the first ``text_batches`` hold packaged texts, the rest random tokens."""

    text_batches: int = 0


def build_parity_batches(
    tokenizer: Any,
    task: ExportTask,
    input_names: list[str],
    *,
    samples: int,
    max_length: int,
    vocab_size: int,
    seed: int = 0,
) -> ParityBatches:
    """About three quarters packaged texts (as many as exist), the rest random-length token sequences."""
    data = load_parity_samples()
    texts: list[Any] = INFERENCE_TASKS[task.name].parity_inputs(data)
    rng = np.random.default_rng(seed)
    n_texts = min(len(texts), samples - max(1, samples // 4)) if samples > 1 else 1
    n_random = samples - n_texts
    length = min(PARITY_MAX_LENGTH, max_length)
    batches = ParityBatches()
    chosen = texts[:n_texts]
    for start in range(0, len(chosen), PARITY_BATCH_SIZE):
        chunk = chosen[start : start + PARITY_BATCH_SIZE]
        if isinstance(chunk[0], tuple):
            first, second = [c[0] for c in chunk], [c[1] for c in chunk]
            encoded = tokenizer(
                first, second, padding=True, truncation=True, max_length=length, return_tensors="np"
            )
        else:
            encoded = tokenizer(chunk, padding=True, truncation=True, max_length=length, return_tensors="np")
        batches.append(model_inputs(dict(encoded), input_names))
    batches.text_batches = len(batches)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, n_random, PARITY_BATCH_SIZE):
        size = min(PARITY_BATCH_SIZE, n_random - start)
        lengths = rng.integers(2, length + 1, size=size)
        width = int(lengths.max())
        ids = np.full((size, width), pad_id, dtype=np.int64)
        mask = np.zeros((size, width), dtype=np.int64)
        for row, n in enumerate(lengths):
            ids[row, :n] = rng.integers(0, vocab_size, size=n)
            mask[row, :n] = 1
        batches.append(model_inputs({"input_ids": ids, "attention_mask": mask}, input_names))
    return batches


def compare(
    reference: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    batches: list[dict[str, np.ndarray]],
    task: ExportTask,
    *,
    atol: float | None,
    reference_label: str,
    options: ParityOptions | None = None,
    min_agreement: float | None = None,
) -> ParityReport:
    """Run both on every batch and judge them by the task's measures (:mod:`pruneofa.core.fidelity`).

    ``options`` holds the bounds (the task's defaults when omitted); ``min_agreement``, when given,
    replaces its label-agreement bound. ``atol=None`` reports raw errors without gating on them (INT8)."""
    options = options or ParityOptions()
    if min_agreement is not None:
        options = options.model_copy(update={"min_agreement": min_agreement})
    meter = ParityMeter(task.name)
    text_batches = getattr(batches, "text_batches", len(batches))
    for index, batch in enumerate(batches):
        meter.add(batch["attention_mask"], reference(batch), candidate(batch), texts=index < text_batches)
    return meter.report(reference=reference_label, atol=atol, options=options)


def check(
    reference: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    tokenizer: Any,
    task: ExportTask,
    input_names: list[str],
    *,
    max_length: int,
    vocab_size: int,
    reference_label: str,
    options: ParityOptions | None = None,
    samples: int = 48,
    atol: float | None = None,
) -> ParityReport:
    """Task-fitting parity of two runners (``feed -> outputs`` in ``task.outputs`` order) on the parity
    inputs: :func:`build_parity_batches` followed by :func:`compare`."""
    batches = build_parity_batches(
        tokenizer, task, input_names, samples=samples, max_length=max_length, vocab_size=vocab_size
    )
    return compare(
        reference, candidate, batches, task, atol=atol, reference_label=reference_label, options=options
    )


def failure_reason(parity_report: ParityReport) -> str:
    """One line naming the measure that failed and the option that governs it."""
    return _failure_reason(parity_report)
