"""What ``pruneofa validate`` reports: the JSON report (``--report``), JUnit XML with one test case per
gate (``--junit``), the behaviour page (``--html``, :mod:`.behaviour_html`) and the terminal summary.
Files are written atomically, so a CI upload or a browser never reads half a report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pydantic import BaseModel

from pruneofa.core.fsutil import write_atomically
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.validation.behaviour import Behaviour, GroupScore, worst_rows
from pruneofa.deploy.validation.gates import Gate


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
    inference_task: str = ""  # the inference task whose evaluation hook read the outputs
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


def write_reports(report: ValidationReport, config: ValidateConfig) -> None:
    """The files ``config`` asks for: ``--report`` (JSON), ``--junit`` (XML), ``--html`` (one page)."""
    if config.report is not None:
        write_atomically(config.report, report.model_dump_json(indent=2) + "\n")
    if config.junit is not None:
        write_atomically(config.junit, junit_xml(report))
    if config.html is not None:
        from pruneofa.deploy.validation.behaviour_html import render_html

        # One class at run time; pyright names this file deploy.validation.reports but the import
        # above's annotation pruneofa.deploy.validation.reports (the install links the folder there).
        write_atomically(config.html, render_html(report))  # pyright: ignore[reportArgumentType]


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
        worst = worst_rows(found.classes)
        lines.append(
            f"  worst {title} ({found.class_metric}): "
            + "; ".join(_row_text(row, len(groups) > 1) for row in worst)
        )
    if found.slices:
        worst = worst_rows(found.slices)
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
