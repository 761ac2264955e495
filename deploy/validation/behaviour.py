"""What changed between a reference and a candidate, not only how much: the schema of ``validate``'s
behaviour report and the measures it is built from, on plain numpy arrays.

A compressed model that keeps its overall metric can still fail one class, one kind of input, or become
over-confident. This module breaks the comparison down so that a reviewer sees where:

* **classes**: per-class precision / recall / F1 (classification); F1 and exact match by question type
  and by answer length (question answering); mean absolute error by gold target range (regression);
* **slices**: the same comparison on groups of examples, always by input length (tokens, power-of-two
  buckets) and by any data column the user names; scored by accuracy (classification), Pearson
  (regression) or F1 (question answering);
* **calibration** (classification): expected calibration error over :data:`ECE_BINS` equal-width bins of
  the top-class probability, the reliability curve of both models, and how confidence moved on the
  examples whose prediction flipped;
* **flipped examples**: the disagreements a person should read first.

Every score is in percent (points), like :mod:`pruneofa.core.metrics`, so that a drop reads the same
whether it is accuracy, F1 or calibration error. A row with fewer than ``min_slice_size`` examples is
reported but not gated: on 5 examples one flip is a 20-point drop, which is noise, not a finding.
Nothing here runs a model or reads a file; :mod:`.validate` does that and passes arrays in. Each task
kind's breakdown (classes, calibration, flipped examples) is in :mod:`.behaviour_by_task`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

ECE_BINS = 15  # the usual choice since Guo et al. 2017, "On Calibration of Modern Neural Networks"
LENGTH_EDGES = (16, 32, 64, 128, 256, 512)  # token-count bucket upper bounds; one more bucket above
TARGET_RANGE_BINS = 5  # regression: equal-width gold ranges (STS-B's 0-5 scale gives 0-1, 1-2, ...)
MAX_COLUMN_VALUES = 50  # a column with more distinct values keeps the most frequent, pools the rest
TEXT_CHARS = 500  # a flipped example's text is cut here, so that SQuAD contexts do not swamp the report
WORST_SHOWN = 3

LENGTH_GROUP = "input length (tokens)"


class GroupScore(BaseModel):
    """Reference vs candidate on one class or slice. ``drop`` is positive when the candidate is worse:
    reference − candidate for scores, candidate − reference for errors (``metric`` ``mae``)."""

    group: str
    value: str
    examples: int
    metric: str
    reference: float
    candidate: float
    drop: float
    agreement: float  # share of the group's examples on which both models predict the same
    gated: bool  # counts for --max-class-drop (enough examples and a score in points)
    detail: dict[str, float] = Field(default_factory=dict)


class ReliabilityBin(BaseModel):
    """One confidence bin, in percent; ``confidence``/``accuracy`` are None for an empty bin."""

    lower: float
    upper: float
    examples: int
    confidence: float | None
    accuracy: float | None


class ModelCalibration(BaseModel):
    ece: float  # expected calibration error, points
    mean_confidence: float  # mean top-class probability, percent
    accuracy: float
    bins: list[ReliabilityBin]


class Calibration(BaseModel):
    binning: str = (
        f"{ECE_BINS} equal-width bins of the top-class softmax probability over [0, 1], each (lower, upper] "
        "(a confidence of exactly 0 falls in the first); ECE = sum over bins of (examples in bin / all) "
        "x |accuracy - mean confidence|, in points"
    )
    bins: int = ECE_BINS
    classes: int | None = None  # the number of classes: a top-class probability is at least 1 / classes
    reference: ModelCalibration
    candidate: ModelCalibration
    increase: float  # candidate ECE − reference ECE, points


class ConfidenceShift(BaseModel):
    """How the models' confidence moved, overall and on the examples whose prediction flipped."""

    flipped: int
    became_wrong: int  # reference right, candidate wrong
    became_right: int  # reference wrong, candidate right
    both_wrong: int
    reference_confidence_on_flipped: float | None  # mean top-class probability, percent
    candidate_confidence_on_flipped: float | None
    reference_label_shift_on_flipped: float | None  # mean change of the reference label's probability
    mean_shift_all: float  # mean (candidate − reference) top-class probability, points
    mean_shift_agreeing: float | None


class FlippedExample(BaseModel):
    """One disagreement, as a person would want to read it."""

    source: str  # file:line, or the SQuAD question id
    texts: list[str]
    gold: str | float | list[str] | None
    reference: str | float
    candidate: str | float
    reference_confidence: float | None = None  # percent; classification only
    candidate_confidence: float | None = None


class Behaviour(BaseModel):
    """The ``behaviour`` section of the validation report."""

    class_metric: str
    slice_metric: str
    min_slice_size: int
    classes: list[GroupScore]
    slices: list[GroupScore]
    calibration: Calibration | None = None
    confidence_shift: ConfidenceShift | None = None
    disagreements: int
    flipped_order: str
    flipped: list[FlippedExample]
    worst: GroupScore | None  # the gated class or slice with the largest drop


# --- building blocks -------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so that large logits do not overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def precision_recall_f1(gold: np.ndarray, predicted: np.ndarray, label: int) -> tuple[float, float, float]:
    """One class against the rest, as fractions; 0.0 where a denominator is empty (scikit-learn's
    ``zero_division=0``), so a class nobody predicts has precision 0, not NaN."""
    true_pos = int(np.sum((predicted == label) & (gold == label)))
    predicted_pos = int(np.sum(predicted == label))
    actual_pos = int(np.sum(gold == label))
    precision = true_pos / predicted_pos if predicted_pos else 0.0
    recall = true_pos / actual_pos if actual_pos else 0.0
    f1 = 2 * true_pos / (predicted_pos + actual_pos) if true_pos else 0.0
    return precision, recall, f1


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[ReliabilityBin]]:
    """ECE in points and the reliability bins (see :class:`Calibration` for the binning)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # searchsorted(side="left") gives i with edges[i-1] < c <= edges[i]: bin i-1, right-closed.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total, ece, rows = len(confidence), 0.0, []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        mean_conf = float(confidence[inside].mean()) if count else None
        accuracy = float(correct[inside].mean()) if count else None
        if accuracy is not None and mean_conf is not None:
            ece += count / total * abs(accuracy - mean_conf)
        rows.append(
            ReliabilityBin(
                lower=100.0 * edges[b],
                upper=100.0 * edges[b + 1],
                examples=count,
                confidence=None if mean_conf is None else 100.0 * mean_conf,
                accuracy=None if accuracy is None else 100.0 * accuracy,
            )
        )
    return 100.0 * ece, rows


def length_buckets(lengths: Sequence[int], edges: Sequence[int] = LENGTH_EDGES) -> list[str]:
    """The bucket name of each token count: ``1-16``, ``17-32``, ... and ``>512`` above the last edge."""
    names = []
    for length in lengths:
        lower = 0
        for edge in edges:
            if length <= edge:
                names.append(f"{lower + 1}-{edge}")
                break
            lower = edge
        else:
            names.append(f">{edges[-1]}")
    return names


def _length_order(edges: Sequence[int] = LENGTH_EDGES) -> list[str]:
    return length_buckets([*edges, edges[-1] + 1], edges)


def cap_values(values: Sequence[str], limit: int = MAX_COLUMN_VALUES) -> list[str]:
    """Keep the ``limit`` most frequent values of a column; pool the others as one ``(other …)`` value,
    so that a column of ids gives a readable report instead of one slice per row."""
    counts = Counter(values)
    if len(counts) <= limit:
        return list(values)
    kept = {value for value, _ in counts.most_common(limit)}
    other = f"(other {len(counts) - limit} values)"
    return [value if value in kept else other for value in values]


Scorer = Callable[[np.ndarray], tuple[float, float, float, dict[str, float]]]


def group_scores(
    group: str,
    values: Sequence[str] | np.ndarray,
    scorer: Scorer,
    *,
    metric: str,
    min_size: int,
    order: Sequence[str] | None = None,
    gateable: bool = True,
) -> list[GroupScore]:
    """One row per distinct value; ``scorer(indices)`` returns (reference, candidate, agreement, detail).
    Rows follow ``order`` where given (length buckets), else the most frequent value first."""
    values = np.asarray(values, dtype=object)
    counts = Counter(values.tolist())
    names = [v for v in order if v in counts] if order else sorted(counts, key=lambda v: (-counts[v], v))
    rows = []
    for name in names:
        indices = np.flatnonzero(values == name)
        reference, candidate, agreement, detail = scorer(indices)
        drop = candidate - reference if metric == "mae" else reference - candidate
        rows.append(
            GroupScore(
                group=group,
                value=str(name),
                examples=len(indices),
                metric=metric,
                reference=reference,
                candidate=candidate,
                drop=drop,
                agreement=agreement,
                gated=gateable and len(indices) >= min_size,
                detail=detail,
            )
        )
    return rows


def worst_row(rows: Sequence[GroupScore]) -> GroupScore | None:
    """The gated row with the largest drop (None when no row is gated)."""
    gated = [row for row in rows if row.gated]
    return max(gated, key=lambda row: row.drop) if gated else None


def cut_text(text: str) -> str:
    """A text as the report shows it: cut at :data:`TEXT_CHARS` characters."""
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def slice_scores(
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[str]],
    scorer: Scorer,
    metric: str,
    min_size: int,
) -> list[GroupScore]:
    """Rows by input length (in length order) and by each named data column, scored by ``scorer``."""
    rows = group_scores(
        LENGTH_GROUP, length_buckets(lengths), scorer, metric=metric, min_size=min_size, order=_length_order()
    )
    for column, values in columns.items():
        rows += group_scores(column, cap_values(values), scorer, metric=metric, min_size=min_size)
    return rows


def worst_rows(rows: Sequence[GroupScore], count: int = WORST_SHOWN) -> list[GroupScore]:
    """The ``count`` rows with the largest drop, gated or not (what the terminal prints: a class that
    collapsed is worth seeing even when it is too small to gate)."""
    return sorted(rows, key=lambda row: -row.drop)[:count]
