"""The arithmetic of output parity, and the records a task declares its parity with.

Each export task's file in :mod:`pruneofa.core.inference` says what parity means for it (a
:class:`TaskParity` row of :class:`Measure` s, and how one batch is measured) with the helpers here;
:mod:`pruneofa.core.fidelity` accumulates and judges the measures. Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

TOP_K = 5
REGRESSION_TOLERANCE = 0.1  # STS-B scores (0-5) count as equal within 0.1, as validate counts them
MAX_ANSWER_TOKENS = 30  # as SQuAD post-processing (pruneofa.core.qa)
# A text's nearest neighbour "agrees" when the candidate's choice is one the reference itself ranks
# within this cosine of its own nearest: a near-tie in the reference (all-MiniLM-L6-v2 has pairs of
# parity sentences 0.006 apart) says nothing about the candidate. The strict share is reported beside it.
NEIGHBOUR_TIE = 0.01

DEFAULT_MIN_AGREEMENT = 0.95
DEFAULT_MIN_COSINE = 0.97
DEFAULT_MIN_NEIGHBOURS = 0.9
DEFAULT_MIN_TOPK_OVERLAP = 0.8


@dataclass(frozen=True)
class Measure:
    """One comparison: ``label`` and ``stat`` name it in reports, ``option`` (a :class:`ParityOptions`
    field) bounds it from below; ``None`` means reported, not gated."""

    key: str
    label: str
    stat: str = ""
    option: str | None = None
    share: bool = True  # shown as a percentage


@dataclass(frozen=True)
class TaskParity:
    """What parity means for one export task (``text-regression``: a one-output text-classification head)."""

    name: str
    compared: str
    measures: tuple[Measure, ...]


class Tally(Protocol):
    """Where a task's measure of one batch goes (:class:`pruneofa.core.fidelity.ParityMeter`)."""

    def count(self, key: str, agreeing: float, total: int) -> None: ...

    def embeddings(self, reference: np.ndarray, candidate: np.ndarray, *, texts: bool) -> None: ...

    def outputs_per_input(self, width: int) -> None: ...


@dataclass(frozen=True)
class ParityHook:
    """A task's parity: its rows (the first is the default; ``row`` picks one by the output width), how
    one batch is measured (``measure(tally, mask, reference, candidate, texts)``, outputs in the export
    task's order), and where the raw "decision" of one output is (``decisions(output, mask)``)."""

    rows: tuple[TaskParity, ...]
    measure: Callable[[Tally, np.ndarray, list[np.ndarray], list[np.ndarray], bool], None]
    decisions: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    regression_row: str | None = None  # the row of a one-output head, where that means a regression

    def row(self, num_outputs: int | None) -> TaskParity:
        if self.regression_row is not None and num_outputs == 1:
            return next(r for r in self.rows if r.name == self.regression_row)
        return self.rows[0]


def last_axis_decisions(output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The argmax over the last axis, at real tokens for per-token outputs."""
    return real(output, mask).argmax(axis=-1)


def real(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of a (batch, sequence, …) output at real tokens; other outputs unchanged."""
    if values.ndim >= 2 and values.shape[:2] == mask.shape:
        return values[mask.astype(bool)]
    return values


def pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens of a (batch, sequence, hidden) output: the sentence embedding."""
    weights = mask.astype(np.float64)[..., None]
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def best_spans(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, 2) start and end of the best span over real tokens: end ≥ start, at most MAX_ANSWER_TOKENS."""
    length = start.shape[1]
    real = mask.astype(bool)
    s = np.where(real, start.astype(np.float64), -np.inf)
    e = np.where(real, end.astype(np.float64), -np.inf)
    i, j = np.indices((length, length))
    allowed = (j >= i) & (j - i < MAX_ANSWER_TOKENS)
    scores = np.where(allowed[None], s[:, :, None] + e[:, None, :], -np.inf)
    flat = scores.reshape(len(scores), -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat, (length, length)), axis=1)


def top_k(logits: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """The k highest-scoring ids of each row, as sets are compared (order within the k is irrelevant)."""
    k = min(k, logits.shape[-1])
    return np.argpartition(-logits, k - 1, axis=-1)[..., :k]


def similarities(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row with every other row (the diagonal is -inf)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity


def neighbour_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(agreement, identical): the share of rows whose nearest other row under ``candidate`` is the
    reference's nearest or within :data:`NEIGHBOUR_TIE` of it by the reference's similarities, and the
    share whose nearest row is exactly the same."""
    ref_sim, got_sim = similarities(reference), similarities(candidate)
    ref_nn, got_nn = ref_sim.argmax(axis=1), got_sim.argmax(axis=1)
    rows = np.arange(len(reference))
    close = ref_sim[rows, got_nn] >= ref_sim[rows, ref_nn] - NEIGHBOUR_TIE
    return float(close.mean()), float((ref_nn == got_nn).mean())


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(axis=1) / norms
