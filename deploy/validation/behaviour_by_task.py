"""The behaviour report of each kind of task, from both models' outputs on the same examples:
classification (per-class F1, calibration, confidence on flipped predictions), regression (error by gold
range) and question answering (F1 by question type and answer length); every kind also by input length
and by the ``--slice-by`` columns. The schema and the shared measures are in :mod:`.behaviour`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pruneofa.core.evaluation import Evaluation
from pruneofa.core.metrics import pearson, squad_exact_match, squad_f1
from pruneofa.core.tasks import TaskSpec
from pruneofa.deploy.validation.behaviour import (
    TARGET_RANGE_BINS,
    Behaviour,
    Calibration,
    ConfidenceShift,
    FlippedExample,
    GroupScore,
    ModelCalibration,
    cut_text,
    expected_calibration_error,
    group_scores,
    precision_recall_f1,
    slice_scores,
    softmax,
    worst_row,
)

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
    gold: Sequence[int] | np.ndarray,
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[str]],
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
    slices = slice_scores(lengths, columns, accuracy, "accuracy", min_slice_size)
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
        classes=int(ref_probs.shape[-1]),
    )
    disagree = np.flatnonzero(ref_pred != cand_pred)
    # Most confident first: the candidate's confidence (it is what ships), then the reference's.
    ranked = sorted(disagree.tolist(), key=lambda i: (-cand_probs[i].max(), -ref_probs[i].max(), i))[:flipped]
    examples = [
        FlippedExample(
            source=sources[i],
            texts=[cut_text(t) for t in texts[i]],
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
    gold: Sequence[float] | np.ndarray,
    reference: Sequence[float],
    candidate: Sequence[float],
    lengths: Sequence[int],
    columns: Mapping[str, Sequence[str]],
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
    slices = slice_scores(lengths, columns, correlation, "pearson", min_slice_size)
    difference = np.abs(ref - cand)
    disagree = np.flatnonzero(~agree)
    ranked = sorted(disagree.tolist(), key=lambda i: (-difference[i], i))[:flipped]
    examples = [
        FlippedExample(
            source=sources[i],
            texts=[cut_text(t) for t in texts[i]],
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
    columns: Mapping[str, Sequence[str]],
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
    slices = slice_scores(lengths, columns, f1, "f1", min_slice_size)
    disagree = np.flatnonzero(~same)
    ranked = sorted(disagree.tolist(), key=lambda i: (-abs(ref_f1[i] - cand_f1[i]), i))[:flipped]
    examples = [
        FlippedExample(
            source=ids[i],
            texts=[cut_text(questions[i]), cut_text(contexts[i])],
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


# --- by the data task's kind -------------------------------------------------------------------------


def _qa(
    task: TaskSpec, examples: Sequence[Any], reference: Evaluation, candidate: Evaluation, **common: Any
) -> Behaviour:
    common.pop("tolerance")  # answers agree when their texts are equal
    return qa_behaviour(
        ids=[e.id for e in examples],
        questions=[e.question for e in examples],
        contexts=[e.context for e in examples],
        answers=[e.answers for e in examples],
        reference=reference.predictions,
        candidate=candidate.predictions,
        **common,
    )


def _regression(
    task: TaskSpec, examples: Sequence[Any], reference: Evaluation, candidate: Evaluation, **common: Any
) -> Behaviour:
    return regression_behaviour(
        gold=[e.label for e in examples],
        reference=reference.predictions,
        candidate=candidate.predictions,
        texts=[e.texts for e in examples],
        sources=[e.source for e in examples],
        **common,
    )


def _classification(
    task: TaskSpec, examples: Sequence[Any], reference: Evaluation, candidate: Evaluation, **common: Any
) -> Behaviour:
    common.pop("tolerance")  # labels agree when equal
    return classification_behaviour(
        labels=task.labels,
        gold=[e.label for e in examples],
        reference_logits=reference.class_logits(),  # as columns of the data's labels (the evaluation hook)
        candidate_logits=candidate.class_logits(),
        texts=[e.texts for e in examples],
        sources=[e.source for e in examples],
        **common,
    )


# The report of each data-task kind: what the gold answers are (labels, scores, answer spans) decides it,
# whichever inference task read the outputs (zero-shot classification of MNLI is a classification).
BEHAVIOUR_BY_KIND = {
    "question-answering": _qa,
    "regression": _regression,
    "classification": _classification,
}


def task_behaviour(
    task: TaskSpec,
    examples: Sequence[Any],
    reference: Evaluation,
    candidate: Evaluation,
    *,
    lengths: Sequence[int],
    columns: dict[str, list[str]],
    min_slice_size: int,
    flipped: int,
    tolerance: float,
) -> Behaviour:
    """The behaviour section for ``task``'s kind, from both models' evaluations on ``examples``;
    regression predictions within ``tolerance`` of each other agree."""
    report = BEHAVIOUR_BY_KIND[task.kind]
    return report(
        task,
        examples,
        reference,
        candidate,
        lengths=lengths,
        columns=columns,
        min_slice_size=min_slice_size,
        flipped=flipped,
        tolerance=tolerance,
    )
