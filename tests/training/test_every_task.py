"""Every task of the registry through training: ``finetune`` on each GLUE task (pairs, three-way NLI with
both MNLI dev sets, STS-B regression, CoLA's header-less file), ``qat`` on regression and on the
mismatched MNLI dev set, and ``validate`` end to end on a pair task and on regression with their
official metrics. Tiny GLUE-format folders are written from the packaged sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest
from pruneofa.core.tasks import get_task

GLUE = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "mnli-mm", "qnli", "rte", "wnli")
# (folder, header, label writer) as the GLUE download writes them
LAYOUT = {
    "cola": ("CoLA", None, lambda i: str(i % 2)),
    "sst2": ("SST-2", ("sentence", "label"), lambda i: str(i % 2)),
    "mrpc": ("MRPC", ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), lambda i: str(i % 2)),
    "qqp": ("QQP", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), lambda i: str(i % 2)),
    "stsb": ("STS-B", ("index", "genre", "sentence1", "sentence2", "score"), lambda i: f"{(i * 7) % 26 / 5:.1f}"),
    "mnli": ("MNLI", ("index", "sentence1", "sentence2", "gold_label"),
             lambda i: ("entailment", "neutral", "contradiction")[i % 3]),
    "qnli": ("QNLI", ("index", "question", "sentence", "label"), lambda i: ("entailment", "not_entailment")[i % 2]),
    "rte": ("RTE", ("index", "sentence1", "sentence2", "label"), lambda i: ("entailment", "not_entailment")[i % 2]),
    "wnli": ("WNLI", ("index", "sentence1", "sentence2", "label"), lambda i: str(i % 2)),
}  # fmt: skip


def _row(task: str, header: tuple[str, ...] | None, i: int, a: str, b: str, label: str) -> list[str]:
    if header is None:  # CoLA: source, label, original mark, sentence
        return ["src", label, "", a]
    values = {"sentence": a, "#1 String": a, "#2 String": b, "question1": a, "question2": b, "question": a}
    values |= {"sentence1": a, "sentence2": b, "genre": "tiny", "index": str(i), "id": str(i)}
    values |= {"qid1": str(2 * i), "qid2": str(2 * i + 1), "#1 ID": str(2 * i), "#2 ID": str(2 * i + 1)}
    if task == "qnli":
        values["sentence"] = b
    values[header[-1] if task != "mrpc" else "Quality"] = label
    return [values[h] for h in header]


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory) -> Path:
    from pruneofa.core.runtime import load_parity_samples

    sentences = load_parity_samples()["sentences"]
    root = tmp_path_factory.mktemp("glue")
    for task, (folder, header, label) in LAYOUT.items():
        target = root / folder
        target.mkdir()
        splits = {"train": sentences * 2}
        splits |= {"dev_matched": sentences, "dev_mismatched": sentences[::-1]} if task == "mnli" else {}
        splits |= {"dev": sentences} if task != "mnli" else {}
        for split, rows in splits.items():
            lines = [] if header is None else ["\t".join(header)]
            for i, a in enumerate(rows):
                lines.append("\t".join(_row(task, header, i, a, rows[(i + 1) % len(rows)], label(i))))
            (target / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _data(root: Path, task: str) -> Path:
    return root / LAYOUT["mnli" if task == "mnli-mm" else task][0]


@pytest.mark.parametrize("task", GLUE)
def test_finetune_takes_every_glue_task(pipeline, glue_root, budget, tmp_path, task):
    out = tmp_path / task
    argv = ["finetune", str(pipeline / "sparse"), "--task", task, "--data", str(_data(glue_root, task))]
    assert main([*argv, "--output", str(out), *budget]) == 0
    manifest = read_manifest(out)
    spec = get_task(task)
    assert manifest.training.task == task and set(spec.metrics) <= set(manifest.metrics)
    assert all(abs(v - 0.9) < 1 / 512 for k, v in manifest.training.layer_sparsity.items() if ".layer." in k)


@pytest.mark.parametrize("task", ["stsb", "mnli-mm"])
def test_qat_and_validate_on_regression_and_mismatched_nli(pipeline, glue_root, budget, tmp_path, task):
    import json

    data = str(_data(glue_root, task))
    out = tmp_path / f"{task}-qat"
    argv = ["qat", str(pipeline / "sparse"), "--task", task, "--data", data, "--export", "openvino"]
    assert main([*argv, "--output", str(out), "--steps", "6", *budget[2:]]) == 0
    manifest = read_manifest(out)
    assert manifest.training.task == task and set(get_task(task).metrics) <= set(manifest.metrics)
    report = tmp_path / "validate.json"
    int8 = out.parent / f"{out.name}-openvino"
    code = main(["validate", str(int8), "--reference", str(out), "--data", data, "--task", task,
                 "--max-drop", "100", "--min-label-agreement", "0", "--report", str(report)])  # fmt: skip
    assert code == 0
    found = json.loads(report.read_text(encoding="utf-8"))
    assert found["task"] == task and found["examples"] > 0
    assert set(get_task(task).metrics) <= set(found["candidate"]["metrics"])
    assert found["split"] == "dev" and found["primary_metric"] == get_task(task).primary_metric
