"""Output parity: the exported model against the PyTorch model, on real-looking and random inputs.

Inputs are the sentences, sentence pairs and question/context pairs kept in
``core/resources/parity_samples.json`` plus random token sequences of random length, batched with
padding so that the dynamic batch and sequence axes and the attention mask are exercised. Errors are
measured on real (non-padding) positions only; agreement is the share of identical argmax decisions
(per example for classification, per token for token-level outputs, per example over positions for
question-answering start/end logits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruneofa.core.manifest import OutputParity, ParityReport
from pruneofa.core.runtime import load_parity_samples, model_inputs
from pruneofa.core.support import ExportTask

PARITY_MAX_LENGTH = 128
PARITY_BATCH_SIZE = 4


def build_parity_batches(
    tokenizer: Any,
    task: ExportTask,
    input_names: list[str],
    *,
    samples: int,
    max_length: int,
    vocab_size: int,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """About three quarters packaged texts (as many as exist), the rest random-length token sequences."""
    data = load_parity_samples()
    if task.name == "question-answering":
        texts: list[Any] = [(qa["question"], qa["context"]) for qa in data["qa"]]
    else:
        texts = list(data["sentences"]) + [tuple(pair) for pair in data["pairs"]]
    rng = np.random.default_rng(seed)
    n_texts = min(len(texts), samples - max(1, samples // 4)) if samples > 1 else 1
    n_random = samples - n_texts
    length = min(PARITY_MAX_LENGTH, max_length)
    batches = []
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


@dataclass
class _Accumulator:
    max_abs: float = 0.0
    sum_abs: float = 0.0
    count: int = 0
    max_ref: float = 0.0
    agree: int = 0
    decisions: int = 0


def _valid_values(values: np.ndarray, mask: np.ndarray, per_token: bool) -> np.ndarray:
    if per_token and values.ndim >= 2 and values.shape[:2] == mask.shape:
        return values[mask.astype(bool)]
    return values


def _decisions(values: np.ndarray, mask: np.ndarray, per_token: bool) -> np.ndarray:
    if per_token and values.ndim == 2 and values.shape == mask.shape:  # QA start/end: argmax over positions
        return np.where(mask.astype(bool), values, -np.inf).argmax(axis=1)
    return _valid_values(values, mask, per_token).argmax(axis=-1)


def compare(
    reference: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    batches: list[dict[str, np.ndarray]],
    task: ExportTask,
    *,
    atol: float | None,
    min_agreement: float,
    reference_label: str,
) -> ParityReport:
    """Run both on every batch; ``atol=None`` reports the error without gating on it (INT8)."""
    accumulators = {name: _Accumulator() for name in task.outputs}
    samples = 0
    for batch in batches:
        mask = batch["attention_mask"]
        samples += mask.shape[0]
        expected = reference(batch)
        actual = candidate(batch)
        for name, ref, got in zip(task.outputs, expected, actual, strict=True):
            acc = accumulators[name]
            ref_v, got_v = _valid_values(ref, mask, task.per_token), _valid_values(got, mask, task.per_token)
            diff = np.abs(ref_v - got_v)
            acc.max_abs = max(acc.max_abs, float(diff.max()))
            acc.sum_abs += float(diff.sum())
            acc.count += diff.size
            acc.max_ref = max(acc.max_ref, float(np.abs(ref_v).max()))
            ref_d, got_d = _decisions(ref, mask, task.per_token), _decisions(got, mask, task.per_token)
            acc.agree += int((ref_d == got_d).sum())
            acc.decisions += ref_d.size
    outputs = [
        OutputParity(
            name=name,
            max_abs_error=acc.max_abs,
            mean_abs_error=acc.sum_abs / max(acc.count, 1),
            max_rel_error=acc.max_abs / max(acc.max_ref, 1e-12),
            argmax_agreement=acc.agree / max(acc.decisions, 1),
        )
        for name, acc in accumulators.items()
    ]
    passed = all(
        (atol is None or o.max_abs_error <= atol) and o.argmax_agreement >= min_agreement for o in outputs
    )
    return ParityReport(
        reference=reference_label,
        samples=samples,
        atol=atol,
        min_agreement=min_agreement,
        outputs=outputs,
        passed=passed,
    )


def failure_reason(parity_report: ParityReport) -> str:
    """One line naming the worst output and the option that governs it."""
    atol = parity_report.atol
    worst = max(parity_report.outputs, key=lambda o: o.max_abs_error)
    if atol is not None and worst.max_abs_error > atol:
        return (
            f"output {worst.name} differs by up to {worst.max_abs_error:.3g} > atol {atol:g} "
            "(raise --atol only if that error is acceptable)"
        )
    low = min(parity_report.outputs, key=lambda o: o.argmax_agreement)
    return f"output {low.name} agrees on {low.argmax_agreement:.2%} of decisions < --min-agreement {parity_report.min_agreement:.2%}"
