"""The behaviour report's maths on hand-made arrays whose answers are worked out by hand here."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pruneofa.core.data import TextExample, load_examples
from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import write_atomically
from pruneofa.core.tasks import get_task
from pruneofa.deploy.validation import behaviour, behaviour_by_task
from pruneofa.deploy.validation.columns import column_values


def _logits(predicted: list[int], confidence: list[float], classes: int = 2) -> np.ndarray:
    """Logits whose softmax gives ``confidence`` to ``predicted`` and shares the rest evenly."""
    probs = np.array([[(1 - c) / (classes - 1)] * classes for c in confidence])
    probs[np.arange(len(predicted)), predicted] = confidence
    return np.log(probs)


def test_ece_matches_a_hand_computed_value():
    # Bins of width 1/15: 0.9 is in (0.8667, 0.9333], 0.62 in (0.6, 0.6667].
    # Bin of 0.9: 2 examples, accuracy 1/2, confidence 0.9 → |0.5 - 0.9| = 0.4, weight 2/4.
    # Bin of 0.62: 2 examples, accuracy 1, confidence 0.62 → |1 - 0.62| = 0.38, weight 2/4.
    # ECE = 0.5 * 0.4 + 0.5 * 0.38 = 0.39 → 39 points.
    ece, bins = behaviour.expected_calibration_error(
        np.array([0.9, 0.9, 0.62, 0.62]), np.array([True, False, True, True])
    )
    assert ece == pytest.approx(39.0)
    filled = [b for b in bins if b.examples]
    assert [(b.examples, b.accuracy) for b in filled] == [(2, 100.0), (2, 50.0)]
    assert filled[0].lower == pytest.approx(60.0) and filled[1].upper == pytest.approx(100 * 14 / 15)
    assert len(bins) == 15 and sum(b.examples for b in bins) == 4
    # Bins are (lower, upper]: 0.6 is the upper edge of bin 8 (0.5333, 0.6], and 0 goes in the first bin.
    _, edges = behaviour.expected_calibration_error(np.array([0.6, 0.0]), np.array([True, True]))
    assert edges[8].examples == 1 and edges[0].examples == 1
    # Perfectly calibrated in every bin → 0.
    assert behaviour.expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True]))[0] == 0.0


def test_per_class_precision_recall_f1_by_hand():
    gold = np.array([0, 0, 0, 1, 1, 2])
    reference = np.array([0, 0, 0, 1, 1, 2])
    candidate = np.array([0, 1, 1, 1, 1, 2])  # two class-0 examples go to class 1
    rows = {
        r.value: r
        for r in behaviour_by_task.class_scores(gold, reference, candidate, ["a", "b", "c"], min_size=3)
    }
    a, b, c = rows["a"], rows["b"], rows["c"]
    # class a: candidate precision 1/1, recall 1/3, F1 = 2*1/(1+3) = 0.5
    assert a.reference == 100.0 and a.candidate == pytest.approx(50.0) and a.drop == pytest.approx(50.0)
    assert a.detail["candidate_recall"] == pytest.approx(100 / 3) and a.detail["candidate_precision"] == 100.0
    # class b: tp 2, predicted 4, actual 2 → precision 0.5, recall 1, F1 = 4/6
    assert b.candidate == pytest.approx(200 / 3) and b.detail["candidate_precision"] == 50.0
    assert a.gated and not b.gated and not c.gated  # support 3, 2, 1 against min_size 3
    assert a.agreement == pytest.approx(1 / 3) and c.drop == 0.0
    assert behaviour.worst_row(list(rows.values())) is a


def test_class_nobody_has_or_predicts_is_left_out_and_extra_ids_are_named():
    gold, preds = np.array([0, 1]), np.array([0, 2])
    rows = behaviour_by_task.class_scores(
        gold, preds, preds, behaviour_by_task.label_names(["x", "y"], 3), min_size=1
    )
    assert [r.value for r in rows] == ["x", "y", "id 2"]
    assert rows[2].examples == 0 and rows[2].detail["candidate_predicted"] == 1.0
    assert behaviour_by_task.label_names(["x", "y"], 2) == ["x", "y"]


def test_length_buckets_are_power_of_two_token_counts():
    assert behaviour.length_buckets([1, 16, 17, 32, 33, 128, 129, 512, 513]) == [
        "1-16",
        "1-16",
        "17-32",
        "17-32",
        "33-64",
        "65-128",
        "129-256",
        "257-512",
        ">512",
    ]


def test_slices_by_length_and_column_on_a_hand_made_set():
    # 6 examples: gold = reference everywhere; the candidate is wrong on examples 1 and 4.
    gold = [0, 1, 0, 1, 0, 1]
    ref_logits = _logits(gold, [0.9] * 6)
    cand_pred = [0, 0, 0, 1, 1, 1]
    cand_logits = _logits(cand_pred, [0.8, 0.7, 0.8, 0.8, 0.95, 0.8])
    lengths = [5, 5, 5, 40, 40, 200]  # buckets 1-16 ×3, 33-64 ×2, 129-256 ×1
    domain = ["news", "news", "web", "web", "web", "news"]
    found = behaviour_by_task.classification_behaviour(
        labels=["neg", "pos"],
        gold=gold,
        reference_logits=ref_logits,
        candidate_logits=cand_logits,
        lengths=lengths,
        columns={"domain": domain},
        texts=[(f"text {i}",) for i in range(6)],
        sources=[f"f:{i + 2}" for i in range(6)],
        min_slice_size=2,
        flipped=1,
    )
    slices = {(s.group, s.value): s for s in found.slices}
    assert list(slices) == [
        (behaviour.LENGTH_GROUP, "1-16"),
        (behaviour.LENGTH_GROUP, "33-64"),
        (behaviour.LENGTH_GROUP, "129-256"),  # length buckets in length order; empty ones left out
        ("domain", "news"),  # column values by size, then by name
        ("domain", "web"),
    ]
    short, mid, long = (slices[(behaviour.LENGTH_GROUP, v)] for v in ("1-16", "33-64", "129-256"))
    assert (short.examples, short.reference, short.candidate) == (3, 100.0, pytest.approx(200 / 3))
    assert (mid.examples, mid.candidate, mid.drop, mid.agreement) == (2, 50.0, 50.0, 0.5)
    assert (long.examples, long.candidate, long.gated) == (1, 100.0, False)
    news, web = slices[("domain", "news")], slices[("domain", "web")]
    assert (news.examples, news.candidate) == (3, pytest.approx(200 / 3))  # example 1 wrong
    assert (web.examples, web.candidate) == (3, pytest.approx(200 / 3))  # example 4 wrong
    # The worst gated row: class pos lost example 1 (recall 2/3, precision 2/3 → F1 66.7) or the 33-64 slice
    # (drop 50) — the slice is worse.
    assert found.worst is mid
    # Both flips listed by the candidate's confidence: example 4 (0.95) before example 1 (0.7); --flipped 1.
    assert found.disagreements == 2 and [f.source for f in found.flipped] == ["f:6"]
    flip = found.flipped[0]
    assert (flip.gold, flip.reference, flip.candidate) == ("neg", "neg", "pos")
    assert flip.candidate_confidence == pytest.approx(95.0) and flip.reference_confidence == pytest.approx(
        90.0
    )
    shift = found.confidence_shift
    assert (shift.flipped, shift.became_wrong, shift.became_right, shift.both_wrong) == (2, 2, 0, 0)
    assert shift.reference_confidence_on_flipped == pytest.approx(90.0)
    assert shift.candidate_confidence_on_flipped == pytest.approx(82.5)
    # The reference's label had 0.9 and keeps 0.3 (example 1) / 0.05 (example 4): mean change −0.725.
    assert shift.reference_label_shift_on_flipped == pytest.approx(-72.5)
    # Reference ECE: every prediction right at 0.9 → 10 points.
    assert found.calibration.reference.ece == pytest.approx(10.0)


def test_column_values_are_capped_and_pooled():
    values = [f"v{i}" for i in range(60)] + ["v0"] * 5
    capped = behaviour.cap_values(values, limit=50)
    assert len(set(capped)) == 51 and "(other 10 values)" in capped and capped.count("v0") == 6


def test_regression_error_by_gold_range_is_reported_not_gated():
    gold = np.array([0.0, 1.0, 2.5, 4.0, 5.0])
    ref = gold + 0.05
    cand = np.array([0.0, 1.0, 2.5, 4.0, 3.0])  # the top score is under-predicted by 2
    found = behaviour_by_task.regression_behaviour(
        gold=gold,
        reference=ref,
        candidate=cand,
        lengths=[10] * 5,
        columns={},
        texts=[("a", "b")] * 5,
        sources=[f"s:{i}" for i in range(5)],
        min_slice_size=1,
        flipped=5,
        tolerance=0.1,
    )
    ranges = {r.value: r for r in found.classes}
    assert list(ranges) == ["0.00-1.00", "1.00-2.00", "2.00-3.00", "4.00-5.00"]  # 3-4 is empty
    top = ranges["4.00-5.00"]  # 4.0 and 5.0 (the last range includes the maximum)
    assert top.examples == 2 and top.reference == pytest.approx(0.05) and top.candidate == pytest.approx(1.0)
    assert top.drop == pytest.approx(0.95) and top.detail["candidate_bias"] == pytest.approx(-1.0)
    assert not any(r.gated for r in found.classes) and found.class_metric == "mae"
    assert found.slices[0].metric == "pearson" and found.slices[0].gated
    assert found.disagreements == 1 and found.flipped[0].source == "s:4" and found.flipped[0].gold == 5.0


def test_question_answering_buckets():
    assert behaviour_by_task.question_type("How many people live there?") == "how many/much"
    assert behaviour_by_task.question_type("In what year did it open?") == "what"
    assert behaviour_by_task.question_type("Whose idea was it?") == "who"
    assert behaviour_by_task.question_type("Name the river.") == "other"
    assert [
        behaviour_by_task.answer_length([a]) for a in ("Paris", "New York", "a b c d", "a b c d e f g")
    ] == [
        "1 word",
        "2 words",
        "4-5 words",
        "6+ words",
    ]
    found = behaviour_by_task.qa_behaviour(
        ids=["q1", "q2", "q3"],
        questions=["Who won?", "Who lost?", "When was it?"],
        contexts=["c1", "c2", "c3"],
        answers=[("Ann Lee",), ("Bob",), ("in 1990",)],
        reference={"q1": "Ann Lee", "q2": "Bob", "q3": "1990"},
        candidate={"q1": "Ann", "q2": "Bob", "q3": "1990"},
        lengths=[8, 8, 20],
        columns={},
        min_slice_size=1,
        flipped=3,
    )
    rows = {(r.group, r.value): r for r in found.classes}
    who = rows[("question type", "who")]
    # q1: reference F1 1, candidate "Ann" vs "Ann Lee": precision 1, recall 1/2 → F1 2/3; q2 both 1.
    assert who.reference == 100.0 and who.candidate == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert who.detail["candidate_exact_match"] == 50.0 and who.agreement == 0.5
    assert rows[("answer length", "2 words")].examples == 2  # "Ann Lee" and "in 1990"
    assert [f.source for f in found.flipped] == ["q1"] and found.flipped[0].gold == ["Ann Lee"]
    assert found.calibration is None and found.confidence_shift is None


def test_slice_columns_read_from_the_files_the_examples_came_from(tmp_path):
    task = get_task("sst2")
    csv_file = tmp_path / "dev.csv"
    csv_file.write_text('sentence,label,domain\n"a, quoted\nline",1,news\nplain,0,\n', encoding="utf-8")
    examples = load_examples(task, csv_file)  # sources file:line, a quoted record ending on line 3
    assert column_values(task, str(csv_file), examples, ["domain"]) == {"domain": ["news", "(empty)"]}
    jsonl = tmp_path / "dev.jsonl"
    jsonl.write_text('{"sentence": "x", "label": 1, "src": "a"}\n\n{"sentence": "y", "label": 0, "src": 7}\n')
    examples = load_examples(task, jsonl)
    assert column_values(task, str(jsonl), examples, ["src"]) == {"src": ["a", "7"]}
    array = tmp_path / "dev.json"
    array.write_text(
        '[\n  {"sentence": "x", "label": 1},\n  {"sentence": "y",\n   "label": 0, "src": "b"}\n]'
    )
    examples = load_examples(task, array)
    assert column_values(task, str(array), examples, ["src"]) == {"src": ["(missing)", "b"]}
    with pytest.raises(InputError) as err:
        column_values(task, str(csv_file), load_examples(task, csv_file), ["genre"])
    message = str(err.value)
    assert "'genre'" in message and "'sentence', 'label', 'domain'" in message and "\n" not in message
    hub = [TextExample(("x",), 1, "nyu-mll/glue[validation]:1")]
    with pytest.raises(InputError, match="hub dataset"):
        column_values(task, "nyu-mll/glue", hub, ["domain"])


def test_write_atomically_replaces_whole_files_only(tmp_path, monkeypatch):
    target = tmp_path / "out" / "report.html"
    replaced = []
    real_replace = os.replace

    def spy(source, destination):
        replaced.append((source, destination))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", spy)
    write_atomically(target, "<p>one</p>")
    assert target.read_text() == "<p>one</p>" and len(replaced) == 1
    plain = tmp_path / "plain.html"
    plain.write_text("x")
    assert target.stat().st_mode == plain.stat().st_mode  # the umask applies, as for a plain write
    partial, destination = map(os.fspath, replaced[0])
    assert os.path.dirname(partial) == os.fspath(target.parent) and destination == os.fspath(target)

    def broken(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomically(target, "<p>two</p>")
    assert target.read_text() == "<p>one</p>"  # the old page is intact
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary file left behind


def test_reliability_diagram_starts_at_one_over_classes_and_counts_each_bin():
    from pruneofa.deploy.validation.behaviour import ModelCalibration
    from pruneofa.deploy.validation.behaviour_html import reliability_figure

    confidence = np.array([0.55, 0.55, 0.58, 0.9, 0.95, 0.99])
    ece, bins = behaviour.expected_calibration_error(
        confidence, np.array([True, False, True, True, True, True])
    )
    model = ModelCalibration(ece=ece, mean_confidence=75.0, accuracy=80.0, bins=bins)
    figure = reliability_figure(model, model, classes=2)
    axes = figure.axes[0]
    assert axes.get_xlim() == pytest.approx((50.0, 100.0))  # a binary classifier is never under 50 % sure
    labels = [t.get_text() for t in axes.texts]
    shown = [b for b in bins if b.upper > 50.0]
    assert labels == [str(b.examples) for b in shown]  # every visible bin says how many examples it holds
    assert sorted(int(x) for x in labels if x != "0") == [1, 2, 3]  # (53.3, 60], (86.7, 93.3], (93.3, 100]
    empty = [p for p in axes.patches if p.get_hatch()]
    assert len(empty) == sum(1 for b in shown if not b.examples) > 0  # empty bins drawn apart, in grey
    three = reliability_figure(model, model, classes=3)
    assert three.axes[0].get_xlim()[0] == pytest.approx(100 / 3)


def test_wide_tables_scroll_inside_the_page_and_headers_wrap():
    from pruneofa.deploy.validation.behaviour_html import _STYLE, _group_table

    rows = behaviour_by_task.class_scores(
        np.array([0, 1, 2, 0]), np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"], 1
    )
    html = _group_table(rows, 1)
    assert html.startswith('<div class="scroll"><table>') and html.endswith("</table></div>")
    head, body = html.split("<tbody>")
    assert "<th>precision, reference → candidate</th>" in head and "_" not in head
    # reference_ and candidate_ details share a column, and group and metric (the same on every row) are left
    # to the section's note: the table fits
    assert head.count("<th>") == 7 + 3 and "<th>group</th>" not in head and "<th>metric</th>" not in head
    assert '<td class="num">50.00 → 33.33</td>' in body  # class b: precision 1/2 → 1/3
    assert (
        '<td class="num">2 → 3</td>' in body
    )  # class b: predicted twice by the reference, thrice by the candidate
    assert "div.scroll { overflow-x: auto" in _STYLE
