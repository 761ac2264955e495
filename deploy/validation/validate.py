"""``pruneofa validate``: the accuracy-parity gate for CI, and what changed behind the headline number.

Reference (PyTorch or an exported folder) and candidate (OpenVINO or ONNX, FP32 or INT8) run on the
same examples, batched and padded to each batch's longest sequence; the task's official metric is
computed for both, and the gate passes when the metric drop and the prediction agreement are within
bounds. Because a model can keep its overall metric and still fail one class, one kind of input or its
calibration, the same outputs also feed a behaviour report (:mod:`pruneofa.deploy.behaviour`): per-class
and per-slice scores, calibration error, the flipped examples, with two more gates on them
(``--max-class-drop``, ``--max-ece-increase``). Exit code 0 pass, 1 fail, 2 bad input. A JSON report,
JUnit XML (one test case per gate) and a self-contained HTML page can be written for CI and reviewers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from tqdm import tqdm

from pruneofa.core.data import QAExample, load_examples
from pruneofa.core.errors import InputError
from pruneofa.core.fidelity import REGRESSION_TOLERANCE
from pruneofa.core.manifest import content_digest, hash_model_files, library_versions, now_utc, read_manifest
from pruneofa.core.metrics import compute_metrics
from pruneofa.core.qa import qa_window
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.deploy import behaviour
from pruneofa.deploy.behaviour import Behaviour, GroupScore
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.runners import Runner, check_same_task, open_model

# Agreement is measured as the parity table of core/fidelity.py measures it: the same label, the same
# answer text, STS-B scores within the same tolerance.
REGRESSION_AGREEMENT = REGRESSION_TOLERANCE
TEXT_MAX_LENGTH = 128
_LENGTH_CHUNK = 1024  # examples tokenized at once to count their tokens
# GLUE CoLA files have no header; these are the names the GLUE documentation gives their four columns.
_COLA_COLUMNS = ("source", "label", "original_mark", "sentence")


class ModelScore(BaseModel):
    label: str
    location: str
    metrics: dict[str, float]
    sparse_kernels: str | None = None  # what pruneofa's sparse kernels did when it ran (exported IRs)


class Gate(BaseModel):
    """One bound the candidate is held to; one JUnit test case. ``skipped``: not asked for, or nothing to
    measure it on (the message says which)."""

    name: str
    flag: str
    value: float | None
    bound: float | None
    status: Literal["pass", "fail", "skipped"]
    message: str
    detail: str = ""


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
    max_class_drop: float | None = None
    max_ece_increase: float | None = None
    # Whether the reference is one of the folders the candidate was made from (content digests of the
    # candidate's lineage, pruneofa.json); None: not checkable (no manifest, a hub reference, old lineage).
    reference_is_ancestor: bool | None = None
    lineage: str = ""
    passed: bool
    failures: list[str]
    gates: list[Gate]
    behaviour: Behaviour
    wall_time_s: float
    versions: dict[str, str]


@dataclass
class _Outputs:
    """Both models' outputs on the examples: logits (n × classes), scores (n × 1) or answer texts."""

    reference: Any
    candidate: Any
    max_error: float


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


def _evaluate_text(examples, tokenizer, reference, candidate, batch_size, quiet) -> _Outputs:
    outputs: dict[str, list[np.ndarray]] = {"reference": [], "candidate": []}
    max_error = 0.0
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
            outputs["reference"].append(ref)
            outputs["candidate"].append(got)
            bar.update(1)
    return _Outputs(np.concatenate(outputs["reference"]), np.concatenate(outputs["candidate"]), max_error)


def _evaluate_qa(examples, tokenizer, reference, candidate, batch_size, quiet) -> _Outputs:
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
    return _Outputs(answers["reference"], answers["candidate"], max_error)


def _scores(task: TaskSpec, outputs: _Outputs, examples: Sequence[Any]) -> tuple[dict, float]:
    """Every official metric of both models, and the share of examples on which they agree."""
    if task.kind == "question-answering":
        answers = {"reference": outputs.reference, "candidate": outputs.candidate}
        agree = sum(answers["reference"][e.id] == answers["candidate"][e.id] for e in examples)
    elif task.kind == "regression":
        answers = {"reference": outputs.reference.reshape(-1), "candidate": outputs.candidate.reshape(-1)}
        agree = int((np.abs(answers["reference"] - answers["candidate"]) <= REGRESSION_AGREEMENT).sum())
    else:
        answers = {"reference": outputs.reference.argmax(-1), "candidate": outputs.candidate.argmax(-1)}
        agree = int((answers["reference"] == answers["candidate"]).sum())
    references = examples if task.kind == "question-answering" else [e.label for e in examples]
    scores = {who: compute_metrics(task, predictions, references) for who, predictions in answers.items()}
    return scores, agree / max(len(examples), 1)


# --- what the behaviour report needs besides the outputs -----------------------------------------


def _token_lengths(tokenizer: Any, examples: Sequence[Any]) -> list[int]:
    """Tokens of each example's whole input (special tokens included, before truncation), so that the
    longest bucket also shows the inputs the model saw only part of."""
    lengths: list[int] = []
    for start in range(0, len(examples), _LENGTH_CHUNK):
        chunk = examples[start : start + _LENGTH_CHUNK]
        texts = [(e.question, e.context) if isinstance(e, QAExample) else e.texts for e in chunk]
        encoded = tokenizer(*zip(*texts, strict=True), truncation=False, verbose=False)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return lengths


def _cell(value: Any) -> str:
    """A data cell as a slice name: text stripped, other JSON values as JSON, gaps named."""
    if value is None:
        return "(missing)"
    text = value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text or "(empty)"


def _unknown_column(column: str, where: Any, available: Sequence[str]) -> InputError:
    have = ", ".join(repr(name) for name in available) or "none"
    return InputError(
        f"--slice-by {column!r}: no such column in {where} (its columns are {have}); name one of them"
    )


def _table_columns(path: Path, task: TaskSpec, columns: Sequence[str]) -> dict[int, list[str]]:
    """``{line: [value of each column]}`` of one local data file, keyed as ``load_examples`` keys its
    examples' ``source`` (``file:line``). The readers of :mod:`pruneofa.core.data` are reused on
    purpose: the same parsing gives the same line numbers (a JSON array's records, quoted CSV fields)."""
    from pruneofa.core.data import json_records, table_rows

    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        with contextlib.closing(table_rows(path, "\t" if suffix == ".tsv" else ",")) as rows:
            if task.name == "cola" and suffix == ".tsv":
                header = list(_COLA_COLUMNS)
            else:
                header = next(rows, (0, []))[1]
            for column in columns:
                if column not in header:
                    raise _unknown_column(column, path, header)
            at = [header.index(column) for column in columns]
            return {
                line: [_cell(fields[i]) if i < len(fields) else "(missing)" for i in at]
                for line, fields in rows
            }
    records = json_records(path)
    available = list(
        dict.fromkeys(key for _, record in records if isinstance(record, Mapping) for key in record)
    )
    for column in columns:
        if column not in available:
            raise _unknown_column(column, path, available)
    return {
        int(where.rpartition(":")[2]): [_cell(record.get(column)) for column in columns]
        for where, record in records
        if isinstance(record, Mapping)
    }


def _qa_columns(data: str, examples: Sequence[QAExample], columns: Sequence[str]) -> dict[str, list[str]]:
    """SQuAD slices: ``title`` always; any record key when ``--data`` is a file of flat records."""
    from pruneofa.core.data import json_document

    path, by_id = Path(data).expanduser(), {}
    if path.is_file():
        _, records = json_document(path)
        by_id = {str(r.get("id")): r for _, r in records or () if isinstance(r, Mapping)}
    available = list(dict.fromkeys(["title", *(key for record in by_id.values() for key in record)]))
    for column in columns:
        if column not in available:
            raise _unknown_column(column, data, available)
    return {
        column: [
            _cell(e.title) if column == "title" else _cell(by_id.get(e.id, {}).get(column)) for e in examples
        ]
        for column in columns
    }


def column_values(
    task: TaskSpec, data: str, examples: Sequence[Any], columns: Sequence[str]
) -> dict[str, list[str]]:
    """The value of each ``--slice-by`` column for each example, read from the data file(s) the examples
    came from (``load_examples`` keeps only the task's columns). Bad input is a one-line error."""
    if not columns:
        return {}
    if task.kind == "question-answering":
        return _qa_columns(data, examples, columns)
    tables: dict[str, dict[int, list[str]]] = {}
    values: dict[str, list[str]] = {column: [] for column in columns}
    for example in examples:
        file, _, line = example.source.rpartition(":")
        if file not in tables:
            if not Path(file).is_file():
                raise InputError(
                    f"--slice-by reads the columns of local data files, and {data} is a hub dataset; save it "
                    "to a file (e.g. datasets' Dataset.to_csv('dev.csv')) and pass --data dev.csv"
                )
            tables[file] = _table_columns(Path(file), task, columns)
        row = tables[file].get(int(line), ["(missing)"] * len(columns))
        for column, value in zip(columns, row, strict=True):
            values[column].append(value)
    return values


def _behaviour(
    task: TaskSpec,
    outputs: _Outputs,
    examples: Sequence[Any],
    lengths: Sequence[int],
    columns: dict[str, list[str]],
    config: ValidateConfig,
) -> Behaviour:
    common = dict(
        lengths=lengths, columns=columns, min_slice_size=config.min_slice_size, flipped=config.flipped
    )
    if task.kind == "question-answering":
        return behaviour.qa_behaviour(
            ids=[e.id for e in examples],
            questions=[e.question for e in examples],
            contexts=[e.context for e in examples],
            answers=[e.answers for e in examples],
            reference=outputs.reference,
            candidate=outputs.candidate,
            **common,
        )
    texts, sources = [e.texts for e in examples], [e.source for e in examples]
    if task.kind == "regression":
        return behaviour.regression_behaviour(
            gold=[e.label for e in examples],
            reference=outputs.reference.reshape(-1),
            candidate=outputs.candidate.reshape(-1),
            texts=texts,
            sources=sources,
            tolerance=REGRESSION_AGREEMENT,
            **common,
        )
    return behaviour.classification_behaviour(
        labels=task.labels,
        gold=[e.label for e in examples],
        reference_logits=outputs.reference,
        candidate_logits=outputs.candidate,
        texts=texts,
        sources=sources,
        **common,
    )


# --- the gates -----------------------------------------------------------------------------------


def _where(row: GroupScore) -> str:
    return f"class {row.value!r}" if row.group == "class" else f"{row.group} {row.value!r}"


def _gates(
    config: ValidateConfig,
    primary: str,
    scores: dict[str, dict[str, float]],
    drop: float,
    agreement: float,
    found: Behaviour,
) -> list[Gate]:
    gates = [
        _at_most_gate(
            "metric_drop",
            "--max-drop",
            drop,
            config.max_drop,
            f"{primary} dropped by {drop:.2f} points",
            f"reference {primary} {scores['reference'][primary]:.2f}, candidate {scores['candidate'][primary]:.2f}",
        ),
        Gate(
            name="prediction_agreement",
            flag="--min-agreement",
            value=agreement,
            bound=config.min_agreement,
            status="fail" if agreement < config.min_agreement else "pass",
            message=f"predictions agree on {agreement:.2%} of examples "
            + (
                f"< --min-agreement {config.min_agreement:.2%}"
                if agreement < config.min_agreement
                else f">= {config.min_agreement:.2%}"
            ),
        ),
    ]
    worst, bound = found.worst, config.max_class_drop
    if bound is None:
        gates.append(_skipped("class_drop", "--max-class-drop", "not gated: pass --max-class-drop POINTS"))
    elif worst is None:
        gates.append(
            _skipped(
                "class_drop",
                "--max-class-drop",
                f"no class or slice has at least {config.min_slice_size} examples (--min-slice-size); "
                "nothing to gate",
            )
        )
    else:
        gates.append(
            _at_most_gate(
                "class_drop",
                "--max-class-drop",
                worst.drop,
                bound,
                f"{_where(worst)} {worst.metric} dropped by {worst.drop:.2f} points",
                f"reference {worst.reference:.2f}, candidate {worst.candidate:.2f} on {worst.examples} examples",
                pass_note=" (the worst)",
            )
        )
    calibration, bound = found.calibration, config.max_ece_increase
    if calibration is None:
        gates.append(
            _skipped("ece_increase", "--max-ece-increase", "calibration is measured for classification")
        )
    elif bound is None:
        gates.append(
            _skipped("ece_increase", "--max-ece-increase", "not gated: pass --max-ece-increase POINTS")
        )
    else:
        gates.append(
            _at_most_gate(
                "ece_increase",
                "--max-ece-increase",
                calibration.increase,
                bound,
                f"expected calibration error {'rose' if calibration.increase >= 0 else 'fell'} by "
                f"{abs(calibration.increase):.2f} points",
                f"reference ECE {calibration.reference.ece:.2f}, candidate {calibration.candidate.ece:.2f} "
                f"({calibration.bins} equal-width bins)",
            )
        )
    return gates


def _at_most_gate(
    name: str, flag: str, value: float, bound: float, measured: str, detail: str, pass_note: str = ""
) -> Gate:
    """A gate that fails when ``value`` exceeds ``bound``; its message is ``measured`` and the comparison."""
    failed = value > bound
    comparison = f" > {flag} {bound:g}" if failed else f" <= {bound:g}{pass_note}"
    return Gate(
        name=name,
        flag=flag,
        value=value,
        bound=bound,
        status="fail" if failed else "pass",
        message=measured + comparison,
        detail=detail,
    )


def _skipped(name: str, flag: str, why: str) -> Gate:
    return Gate(name=name, flag=flag, value=None, bound=None, status="skipped", message=why)


def _check_options(task: TaskSpec, config: ValidateConfig) -> None:
    if task.kind == "masked-lm":
        raise InputError(
            f"validate compares task models (classification, regression, question answering); {task.name} is a "
            "pre-training corpus task: pass the task the model was fine-tuned for with --task"
        )
    if config.max_ece_increase is not None and task.kind != "classification":
        raise InputError(
            f"--max-ece-increase gates the calibration of classifiers, and {task.name} is {task.kind}; drop it"
        )


def validate_model(candidate: str, config: ValidateConfig, *, quiet: bool = False) -> ValidationReport:
    """Run the gate; the report's ``passed`` says whether the candidate is within bounds."""
    started = time.perf_counter()
    task = _task_for(candidate, config.task)
    _check_options(task, config)
    examples = load_examples(task, config.data, split=config.split, limit=config.limit)
    if not examples:
        raise InputError(f"no examples in {config.data} ({config.split}); check --data and --split")
    columns = column_values(task, config.data, examples, config.slice_by)  # bad data fails before models load
    # The candidate runs as it will in deployment (sparse kernels per --sparse-kernels); an exported
    # reference runs without them, so that the comparison also checks the kernels.
    candidate_runner = open_model(candidate, task.export_task, sparse_kernels=config.sparse_kernels)
    reference_runner = open_model(config.reference, task.export_task, sparse_kernels="off")
    check_same_task(candidate_runner, reference_runner)
    is_ancestor, lineage = reference_lineage(candidate, config.reference)
    tokenizer = _tokenizer(candidate_runner)
    evaluate = _evaluate_qa if task.kind == "question-answering" else _evaluate_text
    outputs = evaluate(examples, tokenizer, reference_runner, candidate_runner, config.batch_size, quiet)
    scores, agreement = _scores(task, outputs, examples)
    found = _behaviour(task, outputs, examples, _token_lengths(tokenizer, examples), columns, config)
    primary = task.primary_metric
    drop = scores["reference"][primary] - scores["candidate"][primary]
    gates = _gates(config, primary, scores, drop, agreement, found)
    failures = [gate.message for gate in gates if gate.status == "fail"]
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
        max_abs_error=outputs.max_error,
        max_drop=config.max_drop,
        min_agreement=config.min_agreement,
        max_class_drop=config.max_class_drop,
        max_ece_increase=config.max_ece_increase,
        reference_is_ancestor=is_ancestor,
        lineage=lineage,
        passed=not failures,
        failures=failures,
        gates=gates,
        behaviour=found,
        wall_time_s=round(time.perf_counter() - started, 2),
        versions=library_versions(),
    )
    if config.report is not None:
        write_atomically(config.report, report.model_dump_json(indent=2) + "\n")
    if config.junit is not None:
        write_atomically(config.junit, junit_xml(report))
    if config.html is not None:
        from pruneofa.deploy.behaviour_html import render_html

        write_atomically(config.html, render_html(report))
    return report


def reference_lineage(candidate: str, reference: str) -> tuple[bool | None, str]:
    """Is the reference one of the folders the candidate descends from? Its weight/config/tokenizer files
    are hashed and compared with the content digests the candidate's pruneofa.json records for its source
    and every earlier stage's source. A user validating against the wrong model (another run, a folder
    retrained in place since) gets told: a drop measured against an unrelated model says little."""
    folder = Path(candidate)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        return None, "lineage not checked: the candidate has no pruneofa.json"
    ref = Path(reference).expanduser()
    digest = content_digest(hash_model_files(ref)) if ref.is_dir() else None
    if digest is None:
        return None, f"lineage not checked: the reference {reference} is not a local model folder"
    if digest in manifest.ancestry_digests():
        return True, "the reference is an ancestor of the candidate (content hashes of its lineage)"
    if any(entry.source_sha256 is None for entry in manifest.lineage):
        return None, "lineage not checked: the candidate's lineage predates content hashes"
    return False, (
        f"the reference {reference} is not an ancestor of the candidate: its files match none of the "
        "folders the candidate was made from (pruneofa info CANDIDATE shows them); compare against one of those"
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then ``os.replace`` it into place: a reader
    (a CI artifact upload, a browser) sees the old file or the whole new one, never half of one, and two
    runs writing the same path do not share a temporary file. The file gets the permissions a plain write
    would give (the umask applies; ``tempfile.mkstemp`` would leave it readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def junit_xml(report: ValidationReport) -> str:
    """One test case per gate (metric_drop, prediction_agreement, class_drop, ece_increase), so that CI
    systems list the gate as tests; a gate that was not asked for is a skipped case."""
    suite = ET.Element(
        "testsuite",
        name="pruneofa.validate",
        tests=str(len(report.gates)),
        failures=str(sum(gate.status == "fail" for gate in report.gates)),
        errors="0",
        skipped=str(sum(gate.status == "skipped" for gate in report.gates)),
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
    for gate in report.gates:
        case = ET.SubElement(suite, "testcase", classname=classname, name=gate.name, time="0")
        if gate.status == "fail":
            ET.SubElement(case, "failure", message=gate.message).text = gate.detail or None
        elif gate.status == "skipped":
            ET.SubElement(case, "skipped", message=gate.message)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


# --- the terminal --------------------------------------------------------------------------------


def _row_text(row: GroupScore, with_group: bool) -> str:
    name = f"{row.group} {row.value}" if with_group else row.value
    gated = "" if row.gated else ", not gated"
    return (
        f"{name} {row.reference:.2f} → {row.candidate:.2f} (drop {row.drop:+.2f}, {row.examples} ex.{gated})"
    )


def _behaviour_lines(report: ValidationReport) -> list[str]:
    found = report.behaviour
    groups = list(dict.fromkeys(row.group for row in found.classes))
    lines = []
    if found.classes:
        title = "classes" if groups == ["class"] else " / ".join(groups)
        worst = behaviour.worst_rows(found.classes)
        lines.append(
            f"  worst {title} ({found.class_metric}): "
            + "; ".join(_row_text(row, len(groups) > 1) for row in worst)
        )
    if found.slices:
        worst = behaviour.worst_rows(found.slices)
        lines.append(
            f"  worst slices ({found.slice_metric}): " + "; ".join(_row_text(row, True) for row in worst)
        )
    if found.calibration is not None:
        cal = found.calibration
        lines.append(
            f"  calibration error (ECE, {cal.bins} bins): reference {cal.reference.ece:.2f}, candidate "
            f"{cal.candidate.ece:.2f} ({cal.increase:+.2f} points)"
        )
    shift = found.confidence_shift
    if shift is not None and shift.flipped:
        lines.append(
            f"  {shift.flipped} predictions flipped ({shift.became_wrong} became wrong, {shift.became_right} "
            f"became right); confidence on them {shift.reference_confidence_on_flipped:.1f}% → "
            f"{shift.candidate_confidence_on_flipped:.1f}%"
        )
    elif shift is None and found.disagreements:
        lines.append(f"  {found.disagreements} predictions differ")
    if found.flipped:
        lines.append(
            f"  {len(found.flipped)} of them listed in the report, by {found.flipped_order} (--flipped)"
        )
    return lines


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
        *_behaviour_lines(report),
        f"  → {'PASS' if report.passed else 'FAIL: ' + '; '.join(report.failures)}",
    ]
    if report.candidate.sparse_kernels and report.candidate.sparse_kernels != "not applicable":
        lines.insert(4, f"  candidate {report.candidate.sparse_kernels}")
    if report.reference_is_ancestor is False:
        lines.insert(1, f"  WARNING: {report.lineage}")
    return "\n".join(lines)
