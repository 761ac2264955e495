"""``pruneofa validate``: the accuracy-parity gate for CI, and what changed behind the headline number.

Reference (PyTorch or an exported folder) and candidate (OpenVINO or ONNX, FP32 or INT8) run on the
same examples, batched and padded to each batch's longest sequence; the task's official metric is
computed for both, and the gate passes when the metric drop and the prediction agreement are within
bounds. Because a model can keep its overall metric and still fail one class, one kind of input or its
calibration, the same outputs also feed a behaviour report (:mod:`.behaviour_by_task`): per-class and
per-slice scores, calibration error, the flipped examples, with two more gates on them
(``--max-class-drop``, ``--max-ece-increase``). Exit code 0 pass, 1 fail, 2 bad input. A JSON report,
JUnit XML (one test case per gate) and a self-contained HTML page can be written for CI and reviewers.
"""

from __future__ import annotations

import time
from pathlib import Path

from pruneofa.core.data import load_examples
from pruneofa.core.errors import InputError
from pruneofa.core.evaluation import scoring_task
from pruneofa.core.fsutil import refuse_overlap
from pruneofa.core.inference import get_inference_task
from pruneofa.core.manifest import content_digest, hash_model_files, library_versions, now_utc, read_manifest
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.runners import check_same_task, open_model
from pruneofa.deploy.validation.behaviour_by_task import task_behaviour
from pruneofa.deploy.validation.columns import column_values
from pruneofa.deploy.validation.evaluation import compare, task_for, token_lengths, tokenizer_of
from pruneofa.deploy.validation.gates import REGRESSION_AGREEMENT, agreement, check_options, gates
from pruneofa.deploy.validation.reports import ModelScore, ValidationReport, write_reports


def validate_model(candidate: str, config: ValidateConfig, *, quiet: bool = False) -> ValidationReport:
    """Run the gate; the report's ``passed`` says whether the candidate is within bounds."""
    started = time.perf_counter()
    for written in (config.report, config.junit, config.html):
        if written is not None:  # a report path must not replace the models or the data it describes
            refuse_overlap(written, [candidate, config.reference, config.data], what="report")
    task = task_for(candidate, config.task)
    inference = scoring_task(
        task, get_inference_task(config.inference_task) if config.inference_task else None
    )
    check_options(task, inference, config)
    examples = load_examples(task, config.data, split=config.split, limit=config.limit)
    if not examples:
        raise InputError(f"no examples in {config.data} ({config.split}); check --data and --split")
    columns = column_values(task, config.data, examples, config.slice_by)  # bad data fails before models load
    # The candidate runs as it will in deployment (sparse kernels per --sparse-kernels); an exported
    # reference runs without them, so that the comparison also checks the kernels.
    candidate_runner = open_model(
        candidate, inference.export_task, sparse_kernels=config.sparse_kernels, precision=config.precision
    )
    reference_runner = open_model(config.reference, inference.export_task, sparse_kernels="off")
    check_same_task(candidate_runner, reference_runner)
    is_ancestor, lineage = reference_lineage(candidate, config.reference)
    tokenizer = tokenizer_of(candidate_runner)
    compared = compare(
        task, inference, examples, tokenizer, reference_runner, candidate_runner, config.batch_size, quiet
    )
    scores = {"reference": compared.reference.metrics, "candidate": compared.candidate.metrics}
    agreed = agreement(task, inference, compared.reference, compared.candidate, examples)
    found = task_behaviour(
        task,
        examples,
        compared.reference,
        compared.candidate,
        lengths=token_lengths(tokenizer, examples),
        columns=columns,
        min_slice_size=config.min_slice_size,
        flipped=config.flipped,
        tolerance=REGRESSION_AGREEMENT,
    )
    primary = task.primary_metric
    drop = scores["reference"][primary] - scores["candidate"][primary]
    held = gates(config, primary, scores, drop, agreed, found)
    failures = [gate.message for gate in held if gate.status == "fail"]
    report = ValidationReport(
        created_at=now_utc(),
        task=task.name,
        inference_task=inference.name,
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
        agreement=agreed,
        max_abs_error=compared.max_error,
        max_drop=config.max_drop,
        min_agreement=config.min_agreement,
        max_class_drop=config.max_class_drop,
        max_ece_increase=config.max_ece_increase,
        reference_is_ancestor=is_ancestor,
        lineage=lineage,
        passed=not failures,
        failures=failures,
        gates=held,
        behaviour=found,
        wall_time_s=round(time.perf_counter() - started, 2),
        versions=library_versions(),
    )
    write_reports(report, config)
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
