"""Metrics against hand-computed values (arithmetic in the comments), degenerate cases, SQuAD's script."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from pruneofa.core.data import QAExample
from pruneofa.core.errors import InputError
from pruneofa.core.metrics import (
    _average_ranks,
    accuracy,
    compute_metrics,
    f1_binary,
    matthews_correlation,
    normalize_answer,
    pearson,
    perplexity,
    primary,
    spearman,
    squad_exact_match,
    squad_f1,
    squad_scores,
)
from pruneofa.core.tasks import get_task

PREDS = [1, 1, 0, 0, 1]
REFS = [1, 0, 0, 1, 1]
# tp = 2 (items 0, 4), fp = 1 (item 1), fn = 1 (item 3), tn = 1 (item 2)


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_accuracy():
    assert accuracy(PREDS, REFS) == pytest.approx(3 / 5)  # items 0, 2, 4 agree


def test_f1_binary():
    # F1 = 2tp / (2tp + fp + fn) = 4 / 6
    assert f1_binary(PREDS, REFS) == pytest.approx(4 / 6)
    assert f1_binary([0, 0], [0, 0]) == 0.0  # no positives anywhere: 0.0, no warning


def test_matthews_correlation_binary():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2 - 1) / sqrt(3 * 3 * 2 * 2) = 1/6
    assert matthews_correlation(PREDS, REFS) == pytest.approx(1 / 6)
    assert matthews_correlation([0, 1, 1, 0], [0, 1, 1, 0]) == pytest.approx(1.0)
    assert matthews_correlation([1, 0, 0, 1], [0, 1, 1, 0]) == pytest.approx(-1.0)


def test_matthews_correlation_degenerate_is_zero():
    assert matthews_correlation([1, 1, 1, 1], [0, 1, 1, 0]) == 0.0  # constant prediction
    assert matthews_correlation([0, 1, 1, 0], [1, 1, 1, 1]) == 0.0  # constant reference


def test_matthews_correlation_multiclass_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    refs, preds = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    preds[:120] = refs[:120]
    assert matthews_correlation(preds, refs) == pytest.approx(sklearn_metrics.matthews_corrcoef(refs, preds))


def test_pearson():
    # x = [1, 2, 3], y = [1, 2, 2]: dx = [-1, 0, 1], dy = [-2/3, 1/3, 1/3];
    # cov = 2/3 + 1/3 = 1, |dx|^2 = 2, |dy|^2 = 2/3  →  r = 1 / sqrt(4/3) = sqrt(3)/2
    assert pearson([1, 2, 3], [1, 2, 2]) == pytest.approx(math.sqrt(3) / 2)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_pearson_of_a_constant_is_zero():
    assert pearson([0.1, 0.1, 0.1], [1.0, 2.0, 3.0]) == 0.0  # mean of 0.1s is not exactly 0.1
    assert pearson([1.0, 2.0, 3.0], [5, 5, 5]) == 0.0


def test_average_ranks_with_ties():
    # sorted: 10, 10 | 20, 20, 20 | 30 → ranks (1+2)/2 = 1.5, (3+4+5)/3 = 4, 6
    assert _average_ranks(np.array([10, 20, 10, 30, 20, 20])).tolist() == [1.5, 4.0, 1.5, 6.0, 4.0, 4.0]


def test_spearman_with_ties():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]; both mean 2.5: dx = [-1.5, 0, 0, 1.5],
    # dy = [-1.5, .5, -.5, 1.5]; cov = 4.5, |dx|^2 = 4.5, |dy|^2 = 5 → 4.5 / sqrt(22.5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([2, 2, 2], [1, 2, 3]) == 0.0


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, 300).astype(float)  # many ties
    y = x + rng.normal(0, 2, 300)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: accuracy([1, 0], [1]), "2 predictions for 1 references"),
        (lambda: accuracy([], []), "no predictions"),
        (lambda: pearson([1.0, float("nan")], [1.0, 2.0]), "NaN"),
        (lambda: accuracy([[1, 0]], [[1, 0]]), "1-D"),
        (lambda: perplexity([]), "no token losses"),
    ],
)
def test_bad_inputs_are_one_line_errors(call, words):
    with pytest.raises(InputError) as info:
        call()
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text,normalized",
    [
        ("The Quick, brown fox!", "quick brown fox"),  # case, punctuation, leading article
        ("  a  cat\tand   an\napple ", "cat and apple"),  # articles and any whitespace
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("the-end", "theend"),  # punctuation goes first, so "theend" is not an article
        ("U.S.A.", "usa"),
        ("An", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_squad_exact_match_and_f1_take_the_best_ground_truth():
    assert squad_exact_match("the Denver Broncos", ["Broncos", "Denver Broncos"]) == 1.0
    assert squad_exact_match("Denver", ["Broncos", "Denver Broncos"]) == 0.0
    # "denver broncos won" vs "broncos": 1 common; precision 1/3, recall 1 → 2(1/3)/(4/3) = 1/2
    assert squad_f1("Denver Broncos won", ["Broncos", "Carolina"]) == pytest.approx(0.5)
    # vs "broncos": p 1/2, r 1 → 2/3;  vs "denver broncos team": p 1, r 2/3 → 0.8; max 0.8
    assert squad_f1("Denver Broncos", ["Broncos", "Denver Broncos team"]) == pytest.approx(0.8)
    assert squad_f1("", ["Broncos"]) == 0.0
    assert squad_f1("Broncos", "the Broncos") == 1.0  # a single string is one ground truth


def test_squad_scores_in_percent_and_missing_predictions_score_zero():
    references = {"q1": ["Denver Broncos"], "q2": ["Broncos"], "q3": ["Carolina"]}
    predictions = {"q1": "denver broncos.", "q2": "Denver Broncos won", "other": "ignored"}
    # EM: q1 only → 100/3; F1: q1 1 + q2 (p 1/3, r 1 → 1/2) + q3 0 = 1.5 → 50
    scores = squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(50.0)


def test_compute_metrics_glue_is_in_percent():
    mrpc = compute_metrics(get_task("mrpc"), PREDS, REFS)
    assert mrpc == pytest.approx({"accuracy": 60.0, "f1": 400 / 6})
    assert primary(get_task("mrpc"), mrpc) == pytest.approx(400 / 6)
    cola = compute_metrics(get_task("cola"), PREDS, REFS)
    assert cola == pytest.approx({"matthews_correlation": 100 / 6})
    logits = np.eye(2)[PREDS] * 3.0  # argmax gives PREDS back
    assert compute_metrics(get_task("sst2"), logits, REFS) == pytest.approx({"accuracy": 60.0})


def test_compute_metrics_regression_accepts_a_head_output_column():
    scores = compute_metrics(get_task("stsb"), np.array([[1.0], [2.0], [3.0]]), [1.0, 2.0, 2.0])
    assert scores == pytest.approx({"pearson": 50 * math.sqrt(3), "spearmanr": 50 * math.sqrt(3)})
    # pearson: sqrt(3)/2 as in test_pearson. spearman: ranks [1, 2, 3] vs [1, 2.5, 2.5]; dy = [-1, .5, .5],
    # cov = 1 + .5 = 1.5, |dx|^2 = 2, |dy|^2 = 1.5 → 1.5 / sqrt(3) = sqrt(3)/2 as well


def test_compute_metrics_squad_and_mlm():
    examples = [QAExample("q1", "Who?", "Denver Broncos won.", ("Denver Broncos",), (0,), "t")]
    assert compute_metrics(get_task("squad"), {"q1": "Denver Broncos"}, examples) == {
        "exact_match": 100.0,
        "f1": 100.0,
    }
    # mean NLL (ln 2 + ln 8) / 2 = ln 4 → perplexity 4 (not a percentage)
    assert compute_metrics(get_task("mlm"), [math.log(2), math.log(8)], None) == pytest.approx(
        {"perplexity": 4.0}
    )
    with pytest.raises(InputError, match="postprocess_qa"):
        compute_metrics(get_task("squad"), ["Denver"], examples)


def test_primary_names_a_missing_metric():
    with pytest.raises(InputError, match="lack 'f1'"):
        primary(get_task("squad"), {"exact_match": 1.0})
