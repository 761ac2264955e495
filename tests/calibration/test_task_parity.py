"""Parity that fits the task (pruneofa.core.fidelity), on outputs built by hand: each measure sees what
it should, ignores padding, fails when the decision it is about changes, and names its option."""

from __future__ import annotations

import numpy as np
import pytest

from pruneofa.calibration.config import CalibrateConfig
from pruneofa.cli import main
from pruneofa.core import fidelity, parity_measures
from pruneofa.core.fidelity import ParityMeter, ParityOptions, failure_reason
from pruneofa.core.manifest import read_manifest
from pruneofa.core.support import EXPORT_TASKS

RNG = np.random.default_rng(0)


def _mask(lengths: list[int], width: int) -> np.ndarray:
    return (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64)


def _report(task: str, mask, reference, candidate, options=None, texts=True):
    meter = ParityMeter(task)
    meter.add(mask, reference, candidate, texts=texts)
    return meter.report(reference="ref", atol=None, options=options or ParityOptions())


def _value(report, measure: str) -> float:
    return next(c.value for c in report.checks if c.measure == measure)


def test_one_table_defines_every_task_and_the_configs_take_their_defaults_from_it():
    assert set(EXPORT_TASKS) <= set(fidelity.TASK_PARITY)
    options = ParityOptions.model_fields
    for parity in fidelity.TASK_PARITY.values():
        gated = [m for m in parity.measures if m.option is not None]
        assert gated, f"{parity.name} has no bound"
        for measure in gated:
            assert measure.option in options
            # calibrate offers the same option with the same default (one place defines it)
            assert CalibrateConfig.model_fields[measure.option].default == options[measure.option].default
            assert (
                CalibrateConfig.model_fields[measure.option].description
                == options[measure.option].description
            )
    assert fidelity.task_parity("text-classification", 1).name == "text-regression"


def test_label_agreement_for_classification_and_score_agreement_for_regression():
    logits = RNG.normal(size=(8, 3)).astype(np.float32)
    logits[np.arange(8), np.arange(8) % 3] += 5.0  # clear decisions
    flipped = logits.copy()
    flipped[0] = flipped[0][::-1] * 10  # example 0 changes its label
    mask = _mask([5] * 8, 6)
    assert _value(_report("text-classification", mask, [logits], [logits + 0.01]), "label_agreement") == 1.0
    report = _report("text-classification", mask, [logits], [flipped])
    assert _value(report, "label_agreement") == 7 / 8 and not report.passed
    assert "label agreement 87.50% < --min-parity-agreement 0.95" in failure_reason(report)
    assert _report("text-classification", mask, [logits], [flipped], ParityOptions(min_agreement=0.8)).passed

    scores = RNG.uniform(0, 5, size=(8, 1)).astype(np.float32)
    shifted = scores + np.array([[0.05]] * 7 + [[0.3]], dtype=np.float32)  # the last one moves by 0.3
    report = _report("text-classification", mask, [scores], [shifted])
    assert report.task == "text-regression" and _value(report, "score_agreement") == 7 / 8


def test_token_labels_count_real_tokens_only():
    mask = _mask([3, 5], 6)
    logits = RNG.normal(size=(2, 6, 4)).astype(np.float32)
    candidate = logits.copy()
    candidate[0, 4:] = -logits[0, 4:] * 100  # padding: any value, must not count
    report = _report("token-classification", mask, [logits], [candidate])
    assert _value(report, "token_agreement") == 1.0 and report.passed
    candidate[1, 0] = -logits[1, 0]  # one real token of eight changes its label
    report = _report("token-classification", mask, [logits], [candidate])
    assert _value(report, "token_agreement") == 7 / 8 and not report.passed


def test_question_answering_compares_best_spans_over_real_tokens():
    mask = _mask([10, 10], 12)
    start, end = np.zeros((2, 12), np.float32), np.zeros((2, 12), np.float32)
    start[:, 2], end[:, 4] = 5, 5  # span (2, 4) in both examples
    assert list(map(tuple, parity_measures.best_spans(start, end, mask))) == [(2, 4), (2, 4)]
    padded_start = start.copy()
    padded_start[:, 11] = 100  # a huge logit at a padding position changes nothing
    report = _report("question-answering", mask, [start, end], [padded_start, end])
    assert _value(report, "span_agreement") == 1.0 and report.passed
    moved_end = end.copy()
    moved_end[1, 4], moved_end[1, 6] = 0, 5  # example 1: same start, answer ends later
    report = _report("question-answering", mask, [start, end], [start, moved_end])
    assert _value(report, "span_agreement") == 0.5 and not report.passed
    # the start alone still agrees: per-output argmax would have missed half of that change
    assert next(o for o in report.outputs if o.name == "start_logits").argmax_agreement == 1.0


def _hidden(count: int, width: int = 9, size: int = 16):
    mask = _mask(list(RNG.integers(3, width + 1, size=count)), width)
    return mask, RNG.normal(size=(count, width, size)).astype(np.float32)


def test_feature_extraction_compares_pooled_embeddings_and_neighbours():
    mask, hidden = _hidden(12)
    noisy = hidden + RNG.normal(scale=0.01, size=hidden.shape).astype(np.float32)
    noisy[~mask.astype(bool)] = 50.0  # padding positions never enter the pooled embedding
    report = _report("feature-extraction", mask, [hidden], [noisy])
    assert report.passed and _value(report, "cosine_min") > 0.999
    assert _value(report, "neighbour_agreement") == 1.0 and _value(report, "neighbour_identical") == 1.0
    assert fidelity.describe(report.checks).startswith("embedding cosine mean 0.99")
    # the argmax over hidden units, which used to gate, is reported but no longer decides
    assert [c.measure for c in report.checks] == [
        "cosine_mean",
        "cosine_min",
        "neighbour_agreement",
        "neighbour_identical",
    ]

    swapped = hidden.copy()
    swapped[[0, 1]] = hidden[[1, 0]]  # two texts exchange embeddings
    report = _report("feature-extraction", mask, [hidden], [swapped])
    assert not report.passed and _value(report, "cosine_min") < 0.9
    assert "embedding cosine min" in failure_reason(report) and "--min-cosine 0.97" in failure_reason(report)


def test_a_near_tie_of_the_reference_is_not_a_changed_neighbour():
    base = np.eye(4, dtype=np.float32)
    # text 0 is nearly equidistant to texts 1 and 2 (cosine 0.600 and 0.596); 3 is far from all
    reference = np.stack([base[0], 0.6 * base[0] + 0.8 * base[1], 0.596 * base[0] + 0.803 * base[2], base[3]])
    candidate = reference.copy()
    candidate[1] = 0.59 * base[0] + 0.807 * base[1]  # now 2 is (barely) the nearest to 0
    mask = np.ones((4, 1), np.int64)
    report = _report("feature-extraction", mask, [reference[:, None, :]], [candidate[:, None, :]])
    assert _value(report, "neighbour_identical") < 1.0
    assert _value(report, "neighbour_agreement") == 1.0  # within NEIGHBOUR_TIE of the reference's nearest
    far = candidate.copy()
    far[0] = base[3]  # text 0 now sits on text 3: a real change of neighbour
    report = _report("feature-extraction", mask, [reference[:, None, :]], [far[:, None, :]])
    assert _value(report, "neighbour_agreement") < 1.0


def test_random_token_embeddings_are_reported_apart():
    mask, hidden = _hidden(6)
    meter = ParityMeter("feature-extraction")
    meter.add(mask, [hidden], [hidden])
    meter.add(mask, [hidden], [-hidden], texts=False)  # random tokens, embeddings reversed
    report = meter.report(reference="ref", atol=None, options=ParityOptions())
    assert report.passed and _value(report, "cosine_min") == pytest.approx(1.0)
    random = next(c for c in report.checks if c.measure == "random_cosine_min")
    assert random.value == pytest.approx(-1.0) and random.bound is None and random.passed


def test_fill_mask_compares_the_top_k_at_real_tokens():
    mask = _mask([4, 2], 4)
    logits = RNG.normal(size=(2, 4, 50)).astype(np.float32)
    reordered = logits.copy()
    top = np.argsort(-logits, axis=-1)[..., :5]  # best first
    rows, cols = np.indices(top.shape[:2])
    reordered[rows, cols, top[..., 0]] = logits[rows, cols, top[..., 1]]  # order inside the top 5 changes
    reordered[rows, cols, top[..., 1]] = logits[rows, cols, top[..., 0]]
    report = _report("fill-mask", mask, [logits], [reordered])
    assert _value(report, "topk_overlap") == 1.0 and _value(report, "top1_agreement") == 0.0 and report.passed
    pushed_out = logits.copy()
    pushed_out[rows, cols, top[..., 0]] = -100.0  # the best token leaves the top 5 at every real token
    pushed_out[rows, cols, top[..., 1]] = -100.0  # and so does the second
    report = _report("fill-mask", mask, [logits], [pushed_out])
    assert _value(report, "topk_overlap") == pytest.approx(0.6) and not report.passed
    assert "--min-topk-overlap 0.8" in failure_reason(report)


def test_calibrate_offers_the_bounds_as_flags_and_holds_a_feature_extraction_model_to_them(
    export_once, sst2_dir, tmp_path, capsys
):
    """A tiny feature-extraction export: the INT8 model is judged by embedding cosine (not hidden-unit
    argmax); --min-cosine above what INT8 can reach rejects it, naming that flag; nothing is written."""
    exported = export_once("bert", "feature-extraction", "unstructured90")["onnx"].output
    base = ["calibrate", str(exported), "--task", "sst2", "--data", str(sst2_dir), "--samples", "16"]
    out = tmp_path / "int8"
    assert main([*base, "--output", str(out), "--min-cosine", "0.9", "--quiet"]) == 0
    parity = read_manifest(out).parity
    assert parity.task == "feature-extraction" and parity.passed
    assert {c.measure for c in parity.checks} >= {"cosine_mean", "cosine_min", "neighbour_agreement"}
    assert next(c for c in parity.checks if c.measure == "cosine_min").option == "--min-cosine"
    strict = tmp_path / "strict"
    assert main([*base, "--output", str(strict), "--min-cosine", "0.999999", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "embedding cosine min" in err and "< --min-cosine 0.999999" in err
    assert not strict.exists()
