"""``pruneofa validate --html``: the behaviour report as one self-contained page for a reviewer.

One file, no external assets (styles inline, plots embedded as base64 PNG), so that it can be attached
to a CI run or mailed and still open offline in any browser. Plots are drawn with matplotlib's Agg
renderer on a bare :class:`~matplotlib.figure.Figure` (no pyplot state, no display needed). Every text
that came from the data or the models is HTML-escaped: dev sets hold ``<``, ``&`` and quotes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from pruneofa.deploy.validation.behaviour import Behaviour, GroupScore, ModelCalibration

if TYPE_CHECKING:
    from pruneofa.deploy.validation.reports import ValidationReport

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td { overflow-wrap: break-word; } td.num { white-space: nowrap; }
div.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
div.scroll > table { margin: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.worse td { background: #fde8e8; }
.pass { color: #17692a; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.skipped { color: #777; } p.note { color: #555; font-size: 0.9em; max-width: 60em; }
img { max-width: 100%; }
"""
_REFERENCE_COLOUR, _CANDIDATE_COLOUR, _EMPTY_BIN_COLOUR = "tab:gray", "tab:blue", "#ececec"


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(value: Any, numeric: bool = False) -> str:
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Iterable[tuple[Sequence[Any], str]], numeric: Sequence[bool]) -> str:
    """An HTML table; each row is (cells, css class of the row)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for cells, css in rows:
        row_class = f' class="{css}"' if css else ""
        body.append(
            f"<tr{row_class}>" + "".join(_cell(c, n) for c, n in zip(cells, numeric, strict=True)) + "</tr>"
        )
    # The scroll box keeps a wide table (many detail columns) inside the page; the page itself never scrolls
    # sideways.
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _png(figure: Any, title: str) -> str:
    """The figure, titled, as an ``<img>`` with its PNG inline."""
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<p><img alt="{escape(title)}" src="data:image/png;base64,{data}"></p>'


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _scores_chart(rows: Sequence[GroupScore], what: str) -> str:
    """Reference and candidate score of each row, side by side (horizontal bars)."""
    title = f"{what} ({rows[0].metric}): reference vs candidate"
    figure = _figure(7.5, 0.35 * len(rows) + 1.4)
    axes = figure.add_subplot()
    y = np.arange(len(rows))
    names = [
        f"{r.value} ({r.examples})" if r.group == "class" else f"{r.group}: {r.value} ({r.examples})"
        for r in rows
    ]
    axes.barh(y - 0.2, [r.reference for r in rows], height=0.4, color=_REFERENCE_COLOUR, label="reference")
    axes.barh(y + 0.2, [r.candidate for r in rows], height=0.4, color=_CANDIDATE_COLOUR, label="candidate")
    axes.set_yticks(y, names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(rows[0].metric + (" (lower is better)" if rows[0].metric == "mae" else ", %"))
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure, title)


def _reliability_chart(reference: ModelCalibration, candidate: ModelCalibration, classes: int | None) -> str:
    """:func:`reliability_figure` as an inline PNG."""
    return _png(reliability_figure(reference, candidate, classes), "Reliability diagram")


def reliability_figure(reference: ModelCalibration, candidate: ModelCalibration, classes: int | None) -> Any:
    """Accuracy per confidence bin for both models beside the diagonal of perfect calibration, with the
    examples in each bin in a row along the top. The confidence axis starts at 1 / ``classes`` (a top-class
    probability is never lower: 50 % for a binary classifier); bins without examples are grey and hatched."""
    low = 100.0 / classes if classes and classes > 1 else 0.0
    figure = _figure(9, 4.4)
    legend: dict[str, Any] = {}
    for index, (name, model, colour) in enumerate(
        (("reference", reference, _REFERENCE_COLOUR), ("candidate", candidate, _CANDIDATE_COLOUR))
    ):
        axes = figure.add_subplot(1, 2, index + 1)
        shown = [b for b in model.bins if b.upper > low]
        spans = [(max(b.lower, low), b.upper) for b in shown]  # a bin across 1/classes: its visible part
        for b, (left, right) in zip(shown, spans, strict=True):
            if b.examples:
                bar = axes.bar(
                    (left + right) / 2,
                    b.accuracy or 0.0,
                    width=right - left,
                    color=colour,
                    edgecolor="black",
                    linewidth=0.5,
                )
                legend.setdefault(f"{name}: accuracy in bin", bar)
            else:
                bar = axes.bar(
                    (left + right) / 2,
                    100.0,
                    width=right - left,
                    color=_EMPTY_BIN_COLOUR,
                    edgecolor="#c8c8c8",
                    hatch="xx",
                    linewidth=0,
                )
                legend.setdefault("empty bin", bar)
            axes.text(
                (left + right) / 2,
                104,
                str(b.examples),
                ha="center",
                va="center",
                fontsize=7,
                color="black" if b.examples else "#888888",
            )
        filled = [b for b in shown if b.examples]
        (dots,) = axes.plot([b.confidence for b in filled], [b.confidence for b in filled], "r.")
        legend.setdefault("mean confidence", dots)
        (diagonal,) = axes.plot([low, 100], [low, 100], "k--", linewidth=0.8)
        legend.setdefault("perfect calibration", diagonal)
        axes.axhline(100, color="#999999", linewidth=0.6)
        axes.set_xlim(low, 100)
        axes.set_ylim(0, 108)
        axes.set_yticks(range(0, 101, 20))
        start = f"\n(axis from 1/{classes} = {low:.0f} %, the least it can be)" if low else ""
        axes.set_xlabel(f"confidence (top-class probability), %{start}", fontsize=8)
        axes.set_ylabel("accuracy, %")
        axes.set_title(f"{name}: ECE {model.ece:.2f} (top row: examples per bin)", fontsize=9)
    order = [
        "reference: accuracy in bin",
        "candidate: accuracy in bin",
        "mean confidence",
        "perfect calibration",
    ]
    names = sorted(legend, key=lambda n: order.index(n) if n in order else len(order))
    figure.legend(
        [legend[n] for n in names], names, loc="outside lower center", ncol=5, fontsize=8, frameon=False
    )
    return figure


def _flipped_chart(found: Behaviour) -> str:
    """Reference vs candidate confidence on the listed disagreements."""
    points = [
        (f.reference_confidence, f.candidate_confidence, f.candidate == f.gold)
        for f in found.flipped
        if f.reference_confidence is not None and f.candidate_confidence is not None
    ]
    if not points:
        return ""
    figure = _figure(4.8, 4.2)
    axes = figure.add_subplot()
    for right, colour, label in (
        (True, "tab:green", "candidate right"),
        (False, "tab:red", "candidate wrong"),
    ):
        chosen = [(r, c) for r, c, ok in points if ok == right]
        if chosen:
            axes.scatter(*zip(*chosen, strict=True), color=colour, label=label, s=18)
    classes = found.calibration.classes if found.calibration else None
    low = 100.0 / classes if classes and classes > 1 else 0.0  # no confidence is lower than 1 / classes
    axes.plot([low, 100], [low, 100], "k--", linewidth=0.8)
    axes.set_xlim(low, 100)
    axes.set_ylim(low, 100)
    axes.set_xlabel("reference confidence, %")
    axes.set_ylabel("candidate confidence, %")
    axes.legend(fontsize=8)
    return _png(figure, "Confidence on the listed disagreements")


def _detail_columns(rows: Sequence[GroupScore]) -> list[tuple[str, list[str]]]:
    """The detail columns of a group table: ``reference_X`` and ``candidate_X`` side by side in one column
    ``X, reference → candidate`` (half the columns, so that the table fits the page), other keys alone."""
    keys = list(dict.fromkeys(key for row in rows for key in row.detail))
    columns: list[tuple[str, list[str]]] = []
    for key in keys:
        if key.startswith("candidate_") and "reference_" + key.removeprefix("candidate_") in keys:
            continue  # shown with its reference_ twin
        name = key.removeprefix("reference_")
        if key.startswith("reference_") and "candidate_" + name in keys:
            columns.append((f"{name}, reference → candidate", [key, "candidate_" + name]))
        else:
            columns.append((key.replace("_", " "), [key]))
    return columns


def _detail_cell(row: GroupScore, keys: list[str]) -> str:
    digits = 0 if keys[0].endswith("predicted") else 2  # predicted: a count of examples
    return " → ".join(_number(row.detail.get(key), digits) for key in keys)


def _group_table(rows: Sequence[GroupScore], min_size: int) -> str:
    """One row per group; the group and metric columns only where they differ between rows (the section's
    note names them otherwise), so that the table fits the page."""
    details = _detail_columns(rows)
    columns: list[tuple[str, bool, Any]] = [
        ("group", False, lambda row: row.group),
        ("value", False, lambda row: row.value),
        ("examples", True, lambda row: row.examples),
        ("metric", False, lambda row: row.metric),
        ("reference", True, lambda row: _number(row.reference)),
        ("candidate", True, lambda row: _number(row.candidate)),
        ("drop", True, lambda row: f"{row.drop:+.2f}"),
        ("agreement", True, lambda row: f"{row.agreement:.2%}"),
        (
            "gated",
            False,
            lambda row: (
                "yes"
                if row.gated
                else f"no (< {min_size})"
                if row.metric != "mae"
                else "no (error, not points)"
            ),
        ),
        *((name, True, lambda row, keys=keys: _detail_cell(row, keys)) for name, keys in details),
    ]
    same = {name for name in ("group", "metric") if len({getattr(row, name) for row in rows}) == 1}
    columns = [column for column in columns if column[0] not in same]
    body = [
        ([get(row) for _, _, get in columns], "worse" if round(row.drop, 2) > 0 else "")  # shown as worse
        for row in rows
    ]
    return _table([name for name, _, _ in columns], body, [numeric for _, numeric, _ in columns])


def _calibration_section(found: Behaviour) -> str:
    cal = found.calibration
    if cal is None:
        return ""
    table = _table(
        ["model", "ECE (points)", "mean confidence, %", "accuracy, %"],
        [
            ([name, _number(m.ece), _number(m.mean_confidence), _number(m.accuracy)], "")
            for name, m in (("reference", cal.reference), ("candidate", cal.candidate))
        ],
        [False, True, True, True],
    )
    return (
        "<h2>Calibration</h2>"
        f"<p class='note'>{escape(cal.binning)}. Candidate − reference: {cal.increase:+.2f} points.</p>"
        + table
        + _reliability_chart(cal.reference, cal.candidate, cal.classes)
    )


def _shift_section(found: Behaviour) -> str:
    shift = found.confidence_shift
    if shift is None:
        return ""
    rows = [
        ("predictions flipped", shift.flipped),
        ("… reference right, candidate wrong", shift.became_wrong),
        ("… reference wrong, candidate right", shift.became_right),
        ("… both wrong", shift.both_wrong),
        ("reference confidence on flipped, %", _number(shift.reference_confidence_on_flipped)),
        ("candidate confidence on flipped, %", _number(shift.candidate_confidence_on_flipped)),
        (
            "change of the reference label's probability on flipped, points",
            _number(shift.reference_label_shift_on_flipped),
        ),
        ("mean confidence change, all examples, points", _number(shift.mean_shift_all)),
        ("mean confidence change, agreeing examples, points", _number(shift.mean_shift_agreeing)),
    ]
    table = _table(["", "value"], [([name, value], "") for name, value in rows], [False, True])
    return "<h2>Confidence on flipped examples</h2>" + table + _flipped_chart(found)


def _flipped_section(found: Behaviour) -> str:
    if not found.flipped:
        return f"<h2>Disagreements</h2><p>{found.disagreements} disagreements; none listed.</p>"

    def shown(value: Any, confidence: float | None) -> str:
        if isinstance(value, list):  # SQuAD's gold answers
            text = " | ".join(map(str, value))
        elif isinstance(value, float):  # STS-B scores
            text = f"{value:.3f}"
        else:
            text = str(value)
        return text if confidence is None else f"{text} ({confidence:.1f}%)"

    rows = [
        (
            [
                f.source,
                " ‖ ".join(f.texts),
                shown(f.gold, None),
                shown(f.reference, f.reference_confidence),
                shown(f.candidate, f.candidate_confidence),
            ],
            "",
        )
        for f in found.flipped
    ]
    table = _table(["source", "text", "gold", "reference", "candidate"], rows, [False] * 5)
    return (
        f"<h2>Disagreements</h2><p class='note'>{found.disagreements} in all; the {len(found.flipped)} listed are "
        f"ordered by {escape(found.flipped_order)}.</p>" + table
    )


def render_html(report: ValidationReport) -> str:
    """The whole page for one validation report."""
    found = report.behaviour
    names = list(report.reference.metrics)
    metrics = _table(
        ["model", *names],
        [
            ([m.label, *(_number(m.metrics[n]) for n in names)], "")
            for m in (report.reference, report.candidate)
        ],
        [False, *([True] * len(names))],
    )
    gates = _table(
        ["gate", "flag", "value", "bound", "result", "message"],
        [
            (
                [g.name, g.flag, _number(g.value, 4), _number(g.bound, 4), g.status.upper(), g.message],
                {"fail": "worse", "skipped": "skipped"}.get(g.status, ""),
            )
            for g in report.gates
        ],
        [False, False, True, True, False, False],
    )
    verdict = "PASS" if report.passed else "FAIL"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pruneofa validate {escape(report.task)}: {verdict}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>pruneofa validate: {escape(report.task)} — <span class='{verdict.lower()}'>{verdict}</span></h1>",
        f"<p>{report.examples} examples ({escape(report.split)}) from {escape(report.data)}; "
        f"{escape(report.created_at)}. Reference: {escape(report.reference.location)}. "
        f"Candidate: {escape(report.candidate.location)}.</p>",
        "<h2>Metrics</h2>",
        metrics,
        f"<p class='note'>{escape(report.primary_metric)} drop {report.drop:+.2f} points; agreement "
        f"{report.agreement:.2%}; largest output difference {report.max_abs_error:.3g}.</p>",
        "<h2>Gates</h2>",
        gates,
    ]
    if found.classes:
        parts += [
            "<h2>Classes</h2>",
            f"<p class='note'>Scored by {escape(found.class_metric)}; a row's size is its gold examples. Rows with "
            f"fewer than {found.min_slice_size} examples are shown but not gated; highlighted rows got worse.</p>",
            _group_table(found.classes, found.min_slice_size),
            _scores_chart(found.classes, " / ".join(dict.fromkeys(r.group for r in found.classes))),
        ]
    if found.slices:
        parts += [
            "<h2>Slices</h2>",
            f"<p class='note'>Scored by {escape(found.slice_metric)}; input length counts the tokens of the whole "
            "input, before truncation.</p>",
            _group_table(found.slices, found.min_slice_size),
            _scores_chart(found.slices, "slices"),
        ]
    parts += [_calibration_section(found), _shift_section(found), _flipped_section(found), "</body></html>"]
    return "\n".join(part for part in parts if part) + "\n"
