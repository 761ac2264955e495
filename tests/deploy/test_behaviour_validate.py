"""``pruneofa validate``'s behaviour report end to end, on a tiny model and a hand-made MNLI-style set.

The data is built so that every answer is known from the data file alone: the gold label of each
example is the reference's own prediction (picked with a clear margin, so batching cannot change it),
and the candidate is the reference with the classifier row of one class (``neutral``) switched off, so
it gets exactly the ``neutral`` examples wrong and nothing else. Inputs are made of words the tokenizer
keeps whole, so each example's token count is its word count plus the three special tokens.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import random
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from pruneofa.cli import main

NEUTRAL = 1  # MNLI label ids: entailment, neutral, contradiction
GENRES = ("news", "fiction", "talk")
SHORT, LONG = 112, 8  # examples; the candidate fails the 8 neutral ones


def _words(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    words = sorted(w for w in vocab if w.isalpha() and w.islower() and len(w) >= 3)
    return [w for w in words if tokenizer.tokenize(w) == [w]]


def _pairs(rng: random.Random, words: list[str], low: int, high: int, count: int) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(count):
        total = rng.randint(low, high)
        first = rng.randint(1, total - 1)
        pairs.append((" ".join(rng.choices(words, k=first)), " ".join(rng.choices(words, k=total - first))))
    return pairs


@pytest.fixture(scope="module")
def case(make_model, tmp_path_factory):
    """(reference folder, candidate folder, data file, rows written) for the runs below."""
    import transformers

    reference = make_model("bert", "text-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(reference)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(reference).eval()
    words, rng = _words(tokenizer), random.Random(0)
    assert len(words) > 50
    pool = _pairs(rng, words, 2, 12, 400) + _pairs(rng, words, 40, 58, 400)  # 5-15 or 43-61 tokens
    encoded = tokenizer([p for p, _ in pool], [h for _, h in pool], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits.numpy()
    ordered = np.sort(logits, axis=-1)
    clear = ordered[:, -1] - ordered[:, -2] > 0.1
    predicted = logits.argmax(-1)
    # The neutral examples (the ones the candidate fails) are the long pairs, the others the short ones,
    # so the length slices are known whatever the tiny model predicts for the rest of the pool.
    neutral = [i for i in range(400, len(pool)) if clear[i] and predicted[i] == NEUTRAL]
    others = [i for i in range(400) if clear[i] and predicted[i] != NEUTRAL]
    assert len(neutral) >= LONG and len(others) >= SHORT, (
        "the tiny model's predictions changed; adjust the pool"
    )
    chosen = neutral[:LONG] + others[:SHORT]
    random.Random(1).shuffle(chosen)
    rows = []
    for position, index in enumerate(chosen):
        premise, hypothesis = pool[index]
        tokens = len(premise.split()) + len(hypothesis.split()) + 3  # [CLS] p [SEP] h [SEP]
        assert len(tokenizer(premise, hypothesis)["input_ids"]) == tokens  # every word is one token
        rows.append(
            {
                "premise": premise,
                "hypothesis": hypothesis,
                "label": int(predicted[index]),
                "genre": GENRES[position % 3],
                "tokens": tokens,
            }
        )
    root = tmp_path_factory.mktemp("behaviour")
    data = root / "dev.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["premise", "hypothesis", "label", "genre"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "tokens"} for row in rows)
    # The candidate: the reference with the neutral row of the classifier switched off.
    with torch.no_grad():
        model.classifier.weight[NEUTRAL] = 0.0
        model.classifier.bias[NEUTRAL] = -1000.0
    candidate = root / "no-neutral"  # a PyTorch folder: validate opens any model; export is tested elsewhere
    model.save_pretrained(candidate)
    tokenizer.save_pretrained(candidate)
    return reference, candidate, data, rows


def _run(case, *extra: str) -> tuple[int, str, str]:
    reference, candidate, data, _ = case
    out, err = io.StringIO(), io.StringIO()
    argv = ["validate", str(candidate), "--reference", str(reference), "--data", str(data), "--task", "mnli"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--quiet", "--max-drop", "8", "--min-label-agreement", "0.9", *extra])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def gated(case, tmp_path_factory):
    """One run with every report and both new gates; HTML writes are watched for atomicity."""
    from pruneofa.deploy.validation import reports

    out = tmp_path_factory.mktemp("gated")
    written = []
    real = reports.write_atomically

    def watched(path, text):
        written.append(Path(path))
        real(path, text)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reports, "write_atomically", watched)
        code, stdout, _ = _run(
            case,
            "--max-class-drop",
            "20",
            "--min-slice-size",
            "5",
            "--max-ece-increase",
            "100",
            "--slice-by",
            "genre",
            "--report",
            str(out / "gate.json"),
            "--junit",
            str(out / "gate.xml"),
            "--html",
            str(out / "gate.html"),
        )
    report = json.loads((out / "gate.json").read_text())
    return code, stdout, report, out, written


def test_without_the_class_gate_the_candidate_passes(case):
    code, out, _ = _run(case)
    assert code == 0 and "PASS" in out, out
    assert "worst classes (f1): neutral 100.00 → 0.00" in out  # printed, though not gated by default


def test_one_failed_class_fails_max_class_drop_only(gated):
    code, out, report, _, _ = gated
    assert code == 1 and "FAIL" in out
    assert report["drop"] == pytest.approx(100 * LONG / (SHORT + LONG)) and report["agreement"] > 0.9
    assert len(report["failures"]) == 1 and "class 'neutral' f1 dropped by 100.00" in report["failures"][0]
    status = {gate["name"]: gate["status"] for gate in report["gates"]}
    assert status == {
        "metric_drop": "pass",
        "prediction_agreement": "pass",
        "class_drop": "fail",
        "ece_increase": "pass",
    }
    classes = {row["value"]: row for row in report["behaviour"]["classes"]}
    assert classes["neutral"]["examples"] == LONG and classes["neutral"]["gated"]
    assert (classes["neutral"]["reference"], classes["neutral"]["candidate"]) == (100.0, 0.0)
    assert report["behaviour"]["worst"]["value"] == "neutral"


def test_slices_by_length_and_column_match_the_data(gated, case):
    _, _, report, _, _ = gated
    rows = case[3]
    slices = {(s["group"], s["value"]): s for s in report["behaviour"]["slices"]}

    def expected(members):
        wrong = sum(row["label"] == NEUTRAL for row in members)
        return len(members), 100.0 * (len(members) - wrong) / len(members)

    checks = {("genre", g): [r for r in rows if r["genre"] == g] for g in GENRES}
    checks[("input length (tokens)", "1-16")] = [r for r in rows if r["tokens"] <= 16]
    checks[("input length (tokens)", "33-64")] = [r for r in rows if 33 <= r["tokens"] <= 64]
    assert set(slices) == set(checks)  # nothing between 17 and 32 tokens in this set
    for key, members in checks.items():
        count, candidate = expected(members)
        assert slices[key]["examples"] == count and slices[key]["reference"] == 100.0, key
        assert slices[key]["candidate"] == pytest.approx(candidate), key


def test_calibration_and_flipped_examples(gated, case):
    _, out, report, _, _ = gated
    rows = case[3]
    found = report["behaviour"]
    reference = found["calibration"]["reference"]
    # Every reference prediction is right, so its ECE is exactly 100 − its mean confidence.
    assert reference["accuracy"] == 100.0
    assert reference["ece"] == pytest.approx(100.0 - reference["mean_confidence"])
    assert found["calibration"]["bins"] == 15 and len(reference["bins"]) == 15
    shift = found["confidence_shift"]
    assert (shift["flipped"], shift["became_wrong"], shift["became_right"]) == (LONG, LONG, 0)
    flipped = found["flipped"]
    assert found["disagreements"] == LONG and len(flipped) == LONG  # --flipped defaults to 20
    neutral_texts = {(r["premise"], r["hypothesis"]) for r in rows if r["label"] == NEUTRAL}
    assert {tuple(f["texts"]) for f in flipped} == neutral_texts
    assert all(f["gold"] == f["reference"] == "neutral" and f["candidate"] != "neutral" for f in flipped)
    confidences = [f["candidate_confidence"] for f in flipped]
    assert confidences == sorted(confidences, reverse=True)
    assert f"{LONG} predictions flipped ({LONG} became wrong, 0 became right)" in out


def test_junit_has_one_case_per_gate(gated):
    _, _, _, folder, _ = gated
    suite = ET.parse(folder / "gate.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["metric_drop", "prediction_agreement", "class_drop", "ece_increase"]
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "0"
    failure = cases["class_drop"].find("failure")
    assert failure is not None and "neutral" in failure.get("message")
    assert all(
        cases[name].find("failure") is None
        for name in ("metric_drop", "prediction_agreement", "ece_increase")
    )


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in ("meta", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data):
        self.text.append(data)


def test_html_page_is_written_atomically_and_parses(gated, case):
    _, _, report, folder, written = gated
    page_file = folder / "gate.html"
    assert page_file in written  # through write_atomically (temporary file + os.replace)
    assert sorted(p.name for p in folder.iterdir()) == [
        "gate.html",
        "gate.json",
        "gate.xml",
    ]  # nothing partial
    page = _Page()
    page.feed(page_file.read_text(encoding="utf-8"))
    page.close()
    assert page.open == []  # every element closed
    headers = {t.strip() for t in page.text}
    assert {"Gates", "Classes", "Slices", "Calibration", "Disagreements"} <= headers
    assert page.tags.count("table") >= 6  # metrics, gates, classes, slices, calibration, shift, flipped
    assert len(page.images) >= 4  # classes and slices charts, reliability diagram, flipped confidences
    for source in page.images:
        assert source.startswith("data:image/png;base64,")  # self-contained: nothing to fetch
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(page.text)
    assert "neutral" in text and "genre" in text and case[3][0]["genre"] in text
    flipped = report["behaviour"]["flipped"][0]
    assert flipped["texts"][0] in text


def test_bad_slice_column_is_a_one_line_error(case):
    code, out, err = _run(case, "--slice-by", "domain")  # the data is read before any model is loaded
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert "'domain'" in lines[0] and "'premise', 'hypothesis', 'label', 'genre'" in lines[0]


@pytest.mark.parametrize(
    ("task", "extra", "message"),
    [
        ("squad", ["--max-ece-increase", "1"], "--max-ece-increase"),  # calibration is for classifiers
        ("mlm", [], "pre-training corpus task"),
    ],
)
def test_options_that_do_not_fit_the_task_are_bad_input(case, squad_file, task, extra, message):
    reference, candidate, _, _ = case
    argv = ["validate", str(candidate), "--reference", str(reference), "--data", str(squad_file)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--task", task, "--quiet", *extra])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and task in lines[0]
