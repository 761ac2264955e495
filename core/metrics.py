"""The official task metrics, written out in numpy so that scores do not depend on which of
scikit-learn, scipy or ``evaluate`` happens to be installed.

Two levels, on purpose:

* the building blocks (:func:`accuracy`, :func:`f1_binary`, :func:`matthews_correlation`,
  :func:`pearson`, :func:`spearman`, :func:`squad_exact_match`, :func:`squad_f1`) return the plain
  mathematical value (a fraction in [0, 1], a correlation in [-1, 1]), like scikit-learn and scipy;
* the task-level results (:func:`compute_metrics`, :func:`squad_scores`) are in **percent**, every one
  of them, because that is how the GLUE leaderboard, the SQuAD ``evaluate-v1.1.py`` script and the
  papers report them (MCC 0.57 is reported as 57.0), and a manifest that mixes 0.57 and 88.5 invites
  misreading. Perplexity is the one exception: it is not a proportion and is returned as is.

Degenerate inputs never warn or return NaN: a correlation with a constant series is 0.0 (no linear
association can be measured, and 0.0 keeps averages and comparisons working), MCC with a constant
prediction or reference is 0.0 (as scikit-learn returns), and F1 with no positive predictions and no
positive references is 0.0. The SQuAD functions reproduce ``evaluate-v1.1.py`` exactly.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pruneofa.core.errors import InputError

if TYPE_CHECKING:
    from pruneofa.core.data import QAExample
    from pruneofa.core.tasks import TaskSpec


def _pair(predictions: Any, references: Any, *, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    preds = np.asarray(predictions, dtype=dtype)
    refs = np.asarray(references, dtype=dtype)
    if preds.ndim != 1 or refs.ndim != 1:
        raise InputError(
            f"metrics need 1-D predictions and references (got shapes {preds.shape} and {refs.shape}); "
            "pass one value per example"
        )
    if len(preds) != len(refs):
        raise InputError(
            f"{len(preds)} predictions for {len(refs)} references; pass one prediction per example"
        )
    if len(preds) == 0:
        raise InputError("no predictions to score; pass at least one example")
    return preds, refs


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Fraction of predictions equal to their reference."""
    preds, refs = _pair(predictions, references)
    return float(np.mean(preds == refs))


def f1_binary(predictions: Sequence[int], references: Sequence[int]) -> float:
    """F1 of the positive class (label 1), as GLUE scores MRPC and QQP; 0.0 when there are no positives."""
    preds, refs = _pair(predictions, references)
    true_pos = int(np.sum((preds == 1) & (refs == 1)))
    false_pos = int(np.sum((preds == 1) & (refs != 1)))
    false_neg = int(np.sum((preds != 1) & (refs == 1)))
    if true_pos == 0:
        return 0.0
    return 2 * true_pos / (2 * true_pos + false_pos + false_neg)


def matthews_correlation(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Matthews correlation coefficient (multi-class form, equal to the binary one for two classes).

    0.0 when either side is constant, where the coefficient is undefined (scikit-learn does the same).
    """
    preds, refs = _pair(predictions, references)
    classes, encoded = np.unique(np.concatenate([refs, preds]), return_inverse=True)
    true_idx, pred_idx = encoded[: len(refs)], encoded[len(refs) :]
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (true_idx, pred_idx), 1.0)
    true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, samples = np.trace(confusion), confusion.sum()
    cov_true_pred = correct * samples - true_counts @ pred_counts
    cov_pred_pred = samples**2 - pred_counts @ pred_counts
    cov_true_true = samples**2 - true_counts @ true_counts
    if cov_pred_pred == 0 or cov_true_true == 0:
        return 0.0
    return float(cov_true_pred / math.sqrt(cov_true_true * cov_pred_pred))


def _finite_pair(
    predictions: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    preds, refs = _pair(predictions, references, dtype=np.float64)
    if not (np.all(np.isfinite(preds)) and np.all(np.isfinite(refs))):
        raise InputError(
            "predictions or references contain NaN or infinity; the model's outputs are not finite"
        )
    return preds, refs


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    # A constant series has no variance; comparing against exact equality (not a tolerance on the
    # centred values) avoids calling 1e-17 rounding noise "variance".
    if np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    value = float(dx @ dy / math.sqrt(float(dx @ dx) * float(dy @ dy)))
    return max(-1.0, min(1.0, value))


def pearson(predictions: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; 0.0 if either series is constant (undefined there; scipy returns NaN)."""
    return _correlation(*_finite_pair(predictions, references))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span (scipy's ``rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive; group g spans ranks starts[g]+1 .. ends[g]
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def spearman(predictions: Sequence[float], references: Sequence[float]) -> float:
    """Spearman rank correlation with average ranks for ties; 0.0 if either series is constant."""
    preds, refs = _finite_pair(predictions, references)
    return _correlation(_average_ranks(preds), _average_ranks(refs))


def perplexity(token_nll: Sequence[float]) -> float:
    """exp of the mean per-token negative log-likelihood (natural log), over the scored tokens."""
    values = np.asarray(token_nll, dtype=np.float64).ravel()
    if len(values) == 0:
        raise InputError("no token losses to compute perplexity from; score at least one masked token")
    return float(math.exp(float(values.mean())))


# --- SQuAD v1.1, as evaluate-v1.1.py -------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    The order (punctuation before articles) matters and is the official one: "the-end" becomes
    "theend", which keeps its "the".
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _truths(ground_truths: str | Sequence[str]) -> Sequence[str]:
    truths = [ground_truths] if isinstance(ground_truths, str) else ground_truths
    if len(truths) == 0:
        raise InputError("a SQuAD question has no reference answers; every question needs at least one")
    return truths


def _exact(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def _token_f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    same = sum((Counter(pred_tokens) & Counter(truth_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised ground truth, else 0.0."""
    return max(_exact(prediction, truth) for truth in _truths(ground_truths))


def squad_f1(prediction: str, ground_truths: str | Sequence[str]) -> float:
    """Token-overlap F1 of the normalised answers, the best over the ground truths (in [0, 1])."""
    return max(_token_f1(prediction, truth) for truth in _truths(ground_truths))


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent over every referenced question, as ``evaluate-v1.1.py``.

    A question without a prediction scores 0 (the official script does the same, with a message);
    predictions for ids that are not referenced are ignored.
    """
    if len(references) == 0:
        raise InputError("no SQuAD questions to score; pass at least one reference")
    exact = f1 = 0.0
    for qid, truths in references.items():
        prediction = predictions.get(qid)
        if prediction is None:
            continue
        exact += squad_exact_match(prediction, truths)
        f1 += squad_f1(prediction, truths)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}


# --- task level ----------------------------------------------------------------------------------

_SCALAR = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearman,
}


def _label_ids(predictions: Any) -> np.ndarray:
    preds = np.asarray(predictions)
    if preds.ndim == 2:  # logits, one row per example
        preds = preds.argmax(axis=-1)
    return preds


def _regression_values(predictions: Any) -> np.ndarray:
    preds = np.asarray(predictions, dtype=np.float64)
    if preds.ndim == 2 and preds.shape[1] == 1:  # a (n, 1) regression head output
        preds = preds[:, 0]
    return preds


def compute_metrics(
    task: TaskSpec,
    predictions: Any,
    references: Any,
) -> dict[str, float]:
    """Every metric of ``task`` (``task.metrics``), **in percent**, keyed by metric name.

    * classification: ``predictions`` are label ids (or logits of shape ``(n, num_labels)``, whose argmax
      is taken), ``references`` label ids;
    * regression (STS-B): predicted and gold scores (a ``(n, 1)`` head output is accepted);
    * question answering: ``predictions`` maps question id → answer text, ``references`` maps question
      id → the gold answer texts, or is the list of :class:`~pruneofa.core.data.QAExample` scored;
    * masked-lm: ``predictions`` are per-token negative log-likelihoods; ``references`` is ignored and
      the perplexity is returned as is (not a percentage).
    """
    if task.kind == "question-answering":
        if not isinstance(predictions, Mapping):
            raise InputError(
                "SQuAD predictions must map question id to answer text; run postprocess_qa first"
            )
        refs = references if isinstance(references, Mapping) else _qa_references(references)
        scores = squad_scores(predictions, refs)
        return {name: scores[name] for name in task.metrics}
    if task.kind == "masked-lm":
        return {"perplexity": perplexity(predictions)}
    if task.kind == "regression":
        preds, refs = _regression_values(predictions), np.asarray(references, dtype=np.float64)
    else:
        preds, refs = _label_ids(predictions), np.asarray(references)
    return {name: 100.0 * _SCALAR[name](preds, refs) for name in task.metrics}


def _qa_references(examples: Sequence[QAExample]) -> dict[str, Sequence[str]]:
    return {example.id: example.answers for example in examples}


def primary(task: TaskSpec, metrics: Mapping[str, float]) -> float:
    """The task's headline number (``task.primary_metric``) out of a :func:`compute_metrics` result."""
    if task.primary_metric not in metrics:
        raise InputError(
            f"the metrics of task {task.name} lack {task.primary_metric!r} (have {', '.join(metrics) or 'none'}); "
            "compute them with compute_metrics"
        )
    return float(metrics[task.primary_metric])
