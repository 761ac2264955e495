"""What changed between a reference and a candidate, not only how much: the maths of ``validate``'s
behaviour report, on plain numpy arrays.

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
Nothing here runs a model or reads a file; ``deploy.validate`` does that and passes arrays in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from pruneofa.core.metrics import pearson, squad_exact_match, squad_f1

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
        if count:
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
    values: Sequence[str],
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


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _slices(
    lengths: Sequence[int],
    columns: dict[str, Sequence[str]],
    scorer: Scorer,
    metric: str,
    min_size: int,
) -> list[GroupScore]:
    rows = group_scores(
        LENGTH_GROUP, length_buckets(lengths), scorer, metric=metric, min_size=min_size, order=_length_order()
    )
    for column, values in columns.items():
        rows += group_scores(column, cap_values(values), scorer, metric=metric, min_size=min_size)
    return rows


# --- classification --------------------------------------------------------------------------------


def class_scores(
    gold: np.ndarray, reference: np.ndarray, candidate: np.ndarray, labels: Sequence[str], min_size: int
) -> list[GroupScore]:
    """Per-class precision, recall and F1 of both models (F1 is the row's score, in points). A class
    is listed when it is in the gold labels or either model predicts it; its size is its gold support."""
    rows = []
    for label, name in enumerate(labels):
        support = int(np.sum(gold == label))
        if not support and not np.any(reference == label) and not np.any(candidate == label):
            continue
        ref_p, ref_r, ref_f1 = precision_recall_f1(gold, reference, label)
        cand_p, cand_r, cand_f1 = precision_recall_f1(gold, candidate, label)
        of_class = gold == label
        agreement = float(np.mean(reference[of_class] == candidate[of_class])) if support else 1.0
        rows.append(
            GroupScore(
                group="class",
                value=name,
                examples=support,
                metric="f1",
                reference=100.0 * ref_f1,
                candidate=100.0 * cand_f1,
                drop=100.0 * (ref_f1 - cand_f1),
                agreement=agreement,
                gated=support >= min_size,
                detail={
                    "reference_precision": 100.0 * ref_p,
                    "reference_recall": 100.0 * ref_r,
                    "candidate_precision": 100.0 * cand_p,
                    "candidate_recall": 100.0 * cand_r,
                    "reference_predicted": float(np.sum(reference == label)),
                    "candidate_predicted": float(np.sum(candidate == label)),
                },
            )
        )
    return rows


def confidence_shift(ref_probs: np.ndarray, cand_probs: np.ndarray, gold: np.ndarray) -> ConfidenceShift:
    """Top-class probabilities compared overall, on agreeing and on flipped examples (points)."""
    ref_pred, cand_pred = ref_probs.argmax(-1), cand_probs.argmax(-1)
    ref_conf, cand_conf = ref_probs.max(-1), cand_probs.max(-1)
    flipped = ref_pred != cand_pred
    rows = np.arange(len(gold))
    label_shift = cand_probs[rows, ref_pred] - ref_probs[rows, ref_pred]

    def mean(values: np.ndarray, where: np.ndarray) -> float | None:
        return 100.0 * float(values[where].mean()) if where.any() else None

    return ConfidenceShift(
        flipped=int(flipped.sum()),
        became_wrong=int(np.sum(flipped & (ref_pred == gold))),
        became_right=int(np.sum(flipped & (cand_pred == gold))),
        both_wrong=int(np.sum(flipped & (ref_pred != gold) & (cand_pred != gold))),
        reference_confidence_on_flipped=mean(ref_conf, flipped),
        candidate_confidence_on_flipped=mean(cand_conf, flipped),
        reference_label_shift_on_flipped=mean(label_shift, flipped),
        mean_shift_all=100.0 * float(np.mean(cand_conf - ref_conf)),
        mean_shift_agreeing=mean(cand_conf - ref_conf, ~flipped),
    )


def label_names(labels: Sequence[str], width: int) -> list[str]:
    """Class names for a head ``width`` wide; ids past the task's labels (a head wider than the task,
    as in a model trained for another task) are named ``id N`` rather than dropped."""
    return [*labels, *(f"id {i}" for i in range(len(labels), width))]


def classification_behaviour(
    *,
    labels: Sequence[str],
    gold: Sequence[int],
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    lengths: Sequence[int],
    columns: dict[str, Sequence[str]],
    texts: Sequence[Sequence[str]],
    sources: Sequence[str],
    min_slice_size: int,
    flipped: int,
) -> Behaviour:
    """The behaviour section for a classification task, from both models' logits (n × classes)."""
    gold = np.asarray(gold, dtype=np.int64)
    ref_probs, cand_probs = softmax(reference_logits), softmax(candidate_logits)
    ref_pred, cand_pred = ref_probs.argmax(-1), cand_probs.argmax(-1)
    names = label_names(labels, ref_probs.shape[-1])

    def accuracy(indices: np.ndarray) -> tuple[float, float, float, dict[str, float]]:
        g, r, c = gold[indices], ref_pred[indices], cand_pred[indices]
        return 100.0 * float(np.mean(r == g)), 100.0 * float(np.mean(c == g)), float(np.mean(r == c)), {}

    classes = class_scores(gold, ref_pred, cand_pred, names, min_slice_size)
    slices = _slices(lengths, columns, accuracy, "accuracy", min_slice_size)
    ref_ece, ref_bins = expected_calibration_error(ref_probs.max(-1), ref_pred == gold)
    cand_ece, cand_bins = expected_calibration_error(cand_probs.max(-1), cand_pred == gold)
    calibration = Calibration(
        reference=ModelCalibration(
            ece=ref_ece,
            mean_confidence=100.0 * float(ref_probs.max(-1).mean()),
            accuracy=100.0 * float(np.mean(ref_pred == gold)),
            bins=ref_bins,
        ),
        candidate=ModelCalibration(
            ece=cand_ece,
            mean_confidence=100.0 * float(cand_probs.max(-1).mean()),
            accuracy=100.0 * float(np.mean(cand_pred == gold)),
            bins=cand_bins,
        ),
        increase=cand_ece - ref_ece,
    )
    disagree = np.flatnonzero(ref_pred != cand_pred)
    # Most confident first: the candidate's confidence (it is what ships), then the reference's.
    ranked = sorted(disagree, key=lambda i: (-cand_probs[i].max(), -ref_probs[i].max(), i))[:flipped]
    examples = [
        FlippedExample(
            source=sources[i],
            texts=[_cut(t) for t in texts[i]],
            gold=names[gold[i]] if 0 <= gold[i] < len(names) else str(gold[i]),
            reference=names[ref_pred[i]],
            candidate=names[cand_pred[i]],
            reference_confidence=100.0 * float(ref_probs[i].max()),
            candidate_confidence=100.0 * float(cand_probs[i].max()),
        )
        for i in ranked
    ]
    return Behaviour(
        class_metric="f1",
        slice_metric="accuracy",
        min_slice_size=min_slice_size,
        classes=classes,
        slices=slices,
        calibration=calibration,
        confidence_shift=confidence_shift(ref_probs, cand_probs, gold),
        disagreements=len(disagree),
        flipped_order="candidate's confidence, highest first",
        flipped=examples,
        worst=worst_row(classes + slices),
    )


# --- regression ------------------------------------------------------------------------------------


def target_ranges(gold: np.ndarray, bins: int = TARGET_RANGE_BINS) -> tuple[list[str], list[str]]:
    """(range name of each example, names in order): equal-width ranges between the smallest and the
    largest gold score, each [lower, upper) but the last, which includes the maximum."""
    low, high = float(gold.min()), float(gold.max())
    if high == low:
        name = f"{low:g}"
        return [name] * len(gold), [name]
    edges = np.linspace(low, high, bins + 1)
    index = np.clip(np.searchsorted(edges, gold, side="right") - 1, 0, bins - 1)
    names = [f"{edges[b]:.2f}-{edges[b + 1]:.2f}" for b in range(bins)]
    return [names[i] for i in index], names


def regression_behaviour(
    *,
    gold: Sequence[float],
    reference: Sequence[float],
    candidate: Sequence[float],
    lengths: Sequence[int],
    columns: dict[str, Sequence[str]],
    texts: Sequence[Sequence[str]],
    sources: Sequence[str],
    min_slice_size: int,
    flipped: int,
    tolerance: float,
) -> Behaviour:
    """Error by gold range (mean absolute error, not gated: it is not in points) and Pearson by slice.
    Two predictions disagree when they differ by more than ``tolerance``."""
    gold = np.asarray(gold, dtype=np.float64)
    ref, cand = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    agree = np.abs(ref - cand) <= tolerance

    def error(indices: np.ndarray) -> tuple[float, float, float, dict[str, float]]:
        g, r, c = gold[indices], ref[indices], cand[indices]
        detail = {"reference_bias": float(np.mean(r - g)), "candidate_bias": float(np.mean(c - g))}
        return (
            float(np.mean(np.abs(r - g))),
            float(np.mean(np.abs(c - g))),
            float(agree[indices].mean()),
            detail,
        )

    def correlation(indices: np.ndarray) -> tuple[float, float, float, dict[str, float]]:
        g = gold[indices]
        return (
            100.0 * pearson(ref[indices], g),
            100.0 * pearson(cand[indices], g),
            float(agree[indices].mean()),
            {},
        )

    ranges, order = target_ranges(gold)
    classes = group_scores(
        "gold range", ranges, error, metric="mae", min_size=min_slice_size, order=order, gateable=False
    )
    slices = _slices(lengths, columns, correlation, "pearson", min_slice_size)
    difference = np.abs(ref - cand)
    disagree = np.flatnonzero(~agree)
    ranked = sorted(disagree, key=lambda i: (-difference[i], i))[:flipped]
    examples = [
        FlippedExample(
            source=sources[i],
            texts=[_cut(t) for t in texts[i]],
            gold=float(gold[i]),
            reference=float(ref[i]),
            candidate=float(cand[i]),
        )
        for i in ranked
    ]
    return Behaviour(
        class_metric="mae",
        slice_metric="pearson",
        min_slice_size=min_slice_size,
        classes=classes,
        slices=slices,
        disagreements=len(disagree),
        flipped_order=f"difference between the two predictions, largest first (over {tolerance:g})",
        flipped=examples,
        worst=worst_row(classes + slices),
    )


# --- question answering ----------------------------------------------------------------------------

_QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")
QUESTION_TYPES = ("what", "which", "who", "when", "where", "why", "how many/much", "how", "other")
ANSWER_LENGTHS = ("1 word", "2 words", "3 words", "4-5 words", "6+ words")


def question_type(question: str) -> str:
    """The first wh-word of the question (``how many`` / ``how much`` apart from ``how``), else other.
    The first one counts, so "In what year did ..." is a *what* question."""
    words = [w.strip("?,.;:!\"'()").lower() for w in question.split()]
    for position, word in enumerate(words):
        if word in _QUESTION_WORDS:
            if word == "how" and position + 1 < len(words) and words[position + 1] in ("many", "much"):
                return "how many/much"
            return "who" if word in ("whom", "whose") else word
    return "other"


def answer_length(answers: Sequence[str]) -> str:
    """Bucket of the first gold answer's length in words."""
    words = len(answers[0].split()) if answers else 0
    if words <= 3:
        return ANSWER_LENGTHS[max(words, 1) - 1]
    return ANSWER_LENGTHS[3] if words <= 5 else ANSWER_LENGTHS[4]


def qa_behaviour(
    *,
    ids: Sequence[str],
    questions: Sequence[str],
    contexts: Sequence[str],
    answers: Sequence[Sequence[str]],
    reference: dict[str, str],
    candidate: dict[str, str],
    lengths: Sequence[int],
    columns: dict[str, Sequence[str]],
    min_slice_size: int,
    flipped: int,
) -> Behaviour:
    """F1 and exact match by question type, answer length and slice, from both models' answer texts."""
    ref_f1 = np.array([squad_f1(reference[q], a) for q, a in zip(ids, answers, strict=True)])
    cand_f1 = np.array([squad_f1(candidate[q], a) for q, a in zip(ids, answers, strict=True)])
    ref_em = np.array([squad_exact_match(reference[q], a) for q, a in zip(ids, answers, strict=True)])
    cand_em = np.array([squad_exact_match(candidate[q], a) for q, a in zip(ids, answers, strict=True)])
    same = np.array([reference[q] == candidate[q] for q in ids])

    def f1(indices: np.ndarray) -> tuple[float, float, float, dict[str, float]]:
        detail = {
            "reference_exact_match": 100.0 * float(ref_em[indices].mean()),
            "candidate_exact_match": 100.0 * float(cand_em[indices].mean()),
        }
        return (
            100.0 * float(ref_f1[indices].mean()),
            100.0 * float(cand_f1[indices].mean()),
            float(same[indices].mean()),
            detail,
        )

    classes = group_scores(
        "question type",
        [question_type(q) for q in questions],
        f1,
        metric="f1",
        min_size=min_slice_size,
        order=QUESTION_TYPES,
    ) + group_scores(
        "answer length",
        [answer_length(a) for a in answers],
        f1,
        metric="f1",
        min_size=min_slice_size,
        order=ANSWER_LENGTHS,
    )
    slices = _slices(lengths, columns, f1, "f1", min_slice_size)
    disagree = np.flatnonzero(~same)
    ranked = sorted(disagree, key=lambda i: (-abs(ref_f1[i] - cand_f1[i]), i))[:flipped]
    examples = [
        FlippedExample(
            source=ids[i],
            texts=[_cut(questions[i]), _cut(contexts[i])],
            gold=list(answers[i]),
            reference=reference[ids[i]],
            candidate=candidate[ids[i]],
        )
        for i in ranked
    ]
    return Behaviour(
        class_metric="f1",
        slice_metric="f1",
        min_slice_size=min_slice_size,
        classes=classes,
        slices=slices,
        disagreements=len(disagree),
        flipped_order="difference of the two answers' F1 against the gold answers, largest first",
        flipped=examples,
        worst=worst_row(classes + slices),
    )


def worst_rows(rows: Sequence[GroupScore], count: int = WORST_SHOWN) -> list[GroupScore]:
    """The ``count`` rows with the largest drop, gated or not (what the terminal prints: a class that
    collapsed is worth seeing even when it is too small to gate)."""
    return sorted(rows, key=lambda row: -row.drop)[:count]
