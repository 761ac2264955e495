"""``pruneofa validate``: the accuracy-parity gate for CI.

Reference (PyTorch or an exported folder) and candidate (OpenVINO or ONNX, FP32 or INT8) run on the
same examples, batched and padded to each batch's longest sequence; the task's official metric is
computed for both, and the gate passes when the metric drop and the prediction agreement are within
bounds. Exit code 0 pass, 1 fail, 2 bad input. A JSON report and, optionally, JUnit XML are written so
that a CI system shows the gate as a test.
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from tqdm import tqdm

from pruneofa.core.data import load_examples
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import library_versions, now_utc, read_manifest
from pruneofa.core.metrics import compute_metrics
from pruneofa.core.qa import qa_window
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.runners import Runner, check_same_task, open_model

REGRESSION_AGREEMENT = 0.1  # STS-B scores (0–5) count as agreeing when within 0.1 of each other
TEXT_MAX_LENGTH = 128


class ModelScore(BaseModel):
    label: str
    location: str
    metrics: dict[str, float]
    sparse_kernels: str | None = None  # what pruneofa's sparse kernels did when it ran (exported IRs)


class ValidationReport(BaseModel):
    """What ``--report`` writes (JSON)."""

    tool: str = "pruneofa"
    stage: str = "validate"
    created_at: str
    task: str
    data: str
    split: str
    examples: int
    primary_metric: str
    reference: ModelScore
    candidate: ModelScore
    drop: float
    agreement: float
    max_abs_error: float
    max_drop: float
    min_agreement: float
    passed: bool
    failures: list[str]
    wall_time_s: float
    versions: dict[str, str]


def _task_for(candidate: str, requested: str | None) -> TaskSpec:
    if requested:
        return get_task(requested)
    manifest = read_manifest(Path(candidate)) if Path(candidate).is_dir() else None
    if manifest is not None and manifest.calibration is not None:
        return get_task(manifest.calibration.task)
    raise InputError("cannot tell the task of the data; pass --task (e.g. sst2, mrpc, squad)")


def _tokenizer(runner: Runner) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(runner.tokenizer_source, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise InputError(
            f"no tokenizer in {runner.tokenizer_source}; export the model with its tokenizer"
        ) from err


def _progress(total: int, quiet: bool, what: str):
    return tqdm(total=total, desc=what, unit="batch", disable=quiet, file=sys.stderr, leave=False)


def _evaluate_text(task, examples, tokenizer, reference, candidate, batch_size, quiet):
    predictions = {"reference": [], "candidate": []}
    max_error, agree = 0.0, 0
    with _progress((len(examples) + batch_size - 1) // batch_size, quiet, "validating") as bar:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            columns = list(zip(*(e.texts for e in chunk), strict=True))
            encoded = tokenizer(
                *columns,
                padding=True,
                truncation=True,
                max_length=min(TEXT_MAX_LENGTH, reference.max_length, candidate.max_length),
                return_tensors="np",
            )
            feed = dict(encoded)  # each runner takes its own inputs (zero token_type_ids where needed)
            ref, got = reference(feed)[0], candidate(feed)[0]
            max_error = max(max_error, float(np.abs(ref - got).max()))
            if task.kind == "regression":
                ref_p, got_p = ref.reshape(-1), got.reshape(-1)
                agree += int((np.abs(ref_p - got_p) <= REGRESSION_AGREEMENT).sum())
                predictions["reference"] += ref_p.tolist()
                predictions["candidate"] += got_p.tolist()
            else:
                ref_p, got_p = ref.argmax(-1), got.argmax(-1)
                agree += int((ref_p == got_p).sum())
                predictions["reference"] += ref_p.tolist()
                predictions["candidate"] += got_p.tolist()
            bar.update(1)
    labels = [e.label for e in examples]
    scores = {who: compute_metrics(task, preds, labels) for who, preds in predictions.items()}
    return scores, agree / max(len(examples), 1), max_error


def _evaluate_qa(task, examples, tokenizer, reference, candidate, batch_size, quiet):
    from pruneofa.core.qa import batches, postprocess_qa, prepare_qa_features

    length, stride = qa_window(min(reference.max_length, candidate.max_length))
    features = prepare_qa_features(examples, tokenizer, max_length=length, stride=stride)
    logits = {"reference": ([], []), "candidate": ([], [])}
    max_error = 0.0
    with _progress((len(features) + batch_size - 1) // batch_size, quiet, "validating") as bar:
        for feed in batches(features, batch_size):
            mask = feed["attention_mask"].astype(bool)
            outs = {"reference": reference(feed), "candidate": candidate(feed)}
            for who, (start, end) in outs.items():
                logits[who][0].append(start)
                logits[who][1].append(end)
            for ref, got in zip(outs["reference"], outs["candidate"], strict=True):
                max_error = max(max_error, float(np.abs(ref - got)[mask].max()))
            bar.update(1)
    answers = {who: postprocess_qa(examples, features, s, e) for who, (s, e) in logits.items()}
    scores = {who: compute_metrics(task, answers[who], examples) for who in answers}
    agree = sum(answers["reference"][e.id] == answers["candidate"][e.id] for e in examples)
    return scores, agree / max(len(examples), 1), max_error


def validate_model(candidate: str, config: ValidateConfig, *, quiet: bool = False) -> ValidationReport:
    """Run the gate; the report's ``passed`` says whether the candidate is within bounds."""
    started = time.perf_counter()
    task = _task_for(candidate, config.task)
    # The candidate runs as it will in deployment (sparse kernels per --sparse-kernels); an exported
    # reference runs without them, so that the comparison also checks the kernels.
    candidate_runner = open_model(candidate, task.export_task, sparse_kernels=config.sparse_kernels)
    reference_runner = open_model(config.reference, task.export_task, sparse_kernels="off")
    check_same_task(candidate_runner, reference_runner)
    tokenizer = _tokenizer(candidate_runner)
    examples = load_examples(task, config.data, split=config.split, limit=config.limit)
    if not examples:
        raise InputError(f"no examples in {config.data} ({config.split}); check --data and --split")
    evaluate = _evaluate_qa if task.kind == "question-answering" else _evaluate_text
    scores, agreement, max_error = evaluate(
        task, examples, tokenizer, reference_runner, candidate_runner, config.batch_size, quiet
    )
    primary = task.primary_metric
    drop = scores["reference"][primary] - scores["candidate"][primary]
    failures = []
    if drop > config.max_drop:
        failures.append(f"{primary} dropped by {drop:.2f} points > --max-drop {config.max_drop:g}")
    if agreement < config.min_agreement:
        failures.append(
            f"predictions agree on {agreement:.2%} of examples < --min-agreement {config.min_agreement:.2%}"
        )
    report = ValidationReport(
        created_at=now_utc(),
        task=task.name,
        data=config.data,
        split=config.split,
        examples=len(examples),
        primary_metric=primary,
        reference=ModelScore(
            label=reference_runner.label, location=reference_runner.location, metrics=scores["reference"]
        ),
        candidate=ModelScore(
            label=candidate_runner.label,
            location=candidate_runner.location,
            metrics=scores["candidate"],
            sparse_kernels=candidate_runner.sparse_kernels,
        ),
        drop=drop,
        agreement=agreement,
        max_abs_error=max_error,
        max_drop=config.max_drop,
        min_agreement=config.min_agreement,
        passed=not failures,
        failures=failures,
        wall_time_s=round(time.perf_counter() - started, 2),
        versions=library_versions(),
    )
    if config.report is not None:
        _write_atomically(config.report, report.model_dump_json(indent=2) + "\n")
    if config.junit is not None:
        _write_atomically(config.junit, junit_xml(report))
    return report


def _write_atomically(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def junit_xml(report: ValidationReport) -> str:
    """Two test cases (metric drop, prediction agreement) so CI systems list the gate as tests."""
    suite = ET.Element(
        "testsuite",
        name="pruneofa.validate",
        tests="2",
        failures=str(len(report.failures)),
        errors="0",
        time=f"{report.wall_time_s:.2f}",
        timestamp=report.created_at,
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("task", report.task),
        ("candidate", report.candidate.location),
        ("reference", report.reference.location),
        ("examples", str(report.examples)),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    classname = f"pruneofa.validate.{report.task}"
    drop_case = ET.SubElement(suite, "testcase", classname=classname, name="metric_drop", time="0")
    if report.drop > report.max_drop:
        ET.SubElement(
            drop_case, "failure", message=next(f for f in report.failures if "dropped" in f)
        ).text = (
            f"reference {report.primary_metric} {report.reference.metrics[report.primary_metric]:.2f}, "
            f"candidate {report.candidate.metrics[report.primary_metric]:.2f}"
        )
    agree_case = ET.SubElement(suite, "testcase", classname=classname, name="prediction_agreement", time="0")
    if report.agreement < report.min_agreement:
        ET.SubElement(agree_case, "failure", message=next(f for f in report.failures if "agree" in f))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def format_report(report: ValidationReport) -> str:
    names = list(report.reference.metrics)
    lines = [
        f"Validation on {report.examples} {report.task} examples ({report.split}) from {report.data}",
        f"  {'model':<44}" + "".join(f"{n:>22}" for n in names),
        f"  {report.reference.label[:43]:<44}"
        + "".join(f"{report.reference.metrics[n]:>22.2f}" for n in names),
        f"  {report.candidate.label[:43]:<44}"
        + "".join(f"{report.candidate.metrics[n]:>22.2f}" for n in names),
        f"  {report.primary_metric} drop {report.drop:+.2f} points (max {report.max_drop:g}); agreement "
        f"{report.agreement:.2%} (min {report.min_agreement:.2%}); max output difference {report.max_abs_error:.3g}",
        f"  → {'PASS' if report.passed else 'FAIL: ' + '; '.join(report.failures)}",
    ]
    if report.candidate.sparse_kernels and report.candidate.sparse_kernels != "not applicable":
        lines.insert(4, f"  candidate {report.candidate.sparse_kernels}")
    return "\n".join(lines)
