"""What the benchmark reports: the JSON schema (one variant per candidate or peer, with its
measurements and its speed-up over each peer), the ratios and the one-sentence verdict, the Markdown
table, the chart, and the report folder's pruneofa.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from pruneofa.core.manifest import Manifest, SourceInfo, hash_model_files, read_manifest
from pruneofa.deploy.benchmarking.measurement import Measurement


class VariantReport(BaseModel):
    label: str
    role: Literal["candidate", "peer"]
    runtime: str
    weights: str
    location: str | None = None
    settings: str | None = None
    load_memory_mb: float | None = None  # RSS growth while loading and running one batch-1 input
    available: bool = True
    reason: str | None = None
    results: list[Measurement] = Field(default_factory=list)
    speedup: dict[str, dict[str, float]] = Field(default_factory=dict)  # batch → peer label → peer p50 / p50
    sparse_kernels: str | None = None  # pruneofa's sparse kernels: the load-time summary
    sparse_layers: list[str] = Field(default_factory=list)  # the layers that ran the sparse op
    dense_twin_of: str | None = None  # the label of the variant this one re-runs with sparse kernels off


class BenchmarkReport(BaseModel):
    tool: str = "pruneofa"
    stage: str = "benchmark"
    created_at: str
    cpu: str
    isa: str
    threads: int
    precision: str = "f32"  # OpenVINO's inference precision for every OpenVINO variant
    seq: int
    batches: list[int]
    duration_s: float
    repeats: int
    source_model: str | None
    variants: list[VariantReport]
    fastest: dict[str, str]
    statement: str
    command: list[str]
    versions: dict[str, str]
    wall_time_s: float
    machine_load: str | None = None  # a warning when other work was running
    load_average: float | None = None  # 1-minute load average when the run started (any value, stated)


def display_names(paths: list[Path]) -> dict[Path, str]:
    """Each folder's name in the report: its own name, or as many parent folders as it takes to tell apart
    folders of the same name (``run-85/sparse`` and ``run-90/sparse``); labels must be unique, because a
    kernels-off twin finds its variant by label."""
    parts = {path: Path(path).resolve().parts for path in paths}
    names: dict[Path, str] = {}
    for path in paths:
        depth = 1
        while depth < len(parts[path]):
            mine = parts[path][-depth:]
            if all(parts[other][-depth:] != mine for other in paths if other != path):
                break
            depth += 1
        names[path] = "/".join(parts[path][-depth:])
    return names


def report_manifest(folder: Path, report: BenchmarkReport) -> Manifest:
    """pruneofa.json of the report folder: what was measured, and the first candidate's p50 per batch."""
    source = read_manifest(folder)
    first = report.variants[0]
    return Manifest(
        stage="benchmark",
        command=report.command,
        created_at=report.created_at,
        versions=report.versions,
        source=SourceInfo(
            model=str(folder),
            model_type=source.source.model_type if source else "unknown",
            architecture=source.source.architecture if source else None,
            file_sha256=hash_model_files(folder),
        ),
        lineage=(source.lineage + [source.as_lineage()]) if source else [],
        metrics={f"p50_ms_batch{m.batch}": m.p50_ms for m in first.results},
    )


def add_ratios(reports: list[VariantReport]) -> None:
    """Each candidate's speed-up over each peer, per batch: peer p50 / candidate p50."""
    peers = [r for r in reports if r.role == "peer" and r.results]
    for report in reports:
        if report.role != "candidate":
            continue
        for result in report.results:
            ratios = {}
            for peer in peers:
                match = next((p for p in peer.results if p.batch == result.batch), None)
                if match is not None and result.p50_ms > 0:
                    ratios[peer.label] = round(match.p50_ms / result.p50_ms, 3)
            report.speedup[str(result.batch)] = ratios


def verdict(reports: list[VariantReport], cpu: Any, batches: list[int]) -> tuple[dict[str, str], str]:
    """The fastest variant per batch, and one sentence saying so (and what could not be measured)."""
    fastest, sentences = {}, []
    for batch in batches:
        timed = [(r, m) for r in reports for m in r.results if m.batch == batch]
        if not timed:
            continue
        best, best_m = min(timed, key=lambda rm: rm[1].p50_ms)
        fastest[str(batch)] = best.label
        others = sorted(
            (f"{m.p50_ms / best_m.p50_ms:.2f}x {r.label}" for r, m in timed if r is not best),
            key=lambda s: float(s.split("x")[0]),
        )
        sentences.append(
            f"batch {batch}: fastest is {best.label} at p50 {best_m.p50_ms:.1f} ms"
            + (f" (the others take {', '.join(others)} as long)" if others else "")
        )
    missing = [f"{r.label}: {r.reason}" for r in reports if not r.available]
    text = f"On this CPU ({cpu.model}, {cpu.isa}, {cpu.cores} cores): " + "; ".join(sentences) + "."
    if missing:
        text += " Not measured: " + "; ".join(missing) + "."
    return fastest, text


def markdown_table(report: BenchmarkReport) -> str:
    """benchmark.md: one row per variant and batch, with its ratios against each peer."""
    peers = [v.label for v in report.variants if v.role == "peer" and v.results]
    header = ["variant", "runtime", "weights", "batch", "p50 ms", "p90 ms", "p99 ms", "seq/s", "load MB"]
    header += [f"vs {p}" for p in peers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in report.variants:
        for m in variant.results:
            ratios = variant.speedup.get(str(m.batch), {})
            cells = [
                variant.label,
                variant.runtime,
                variant.weights,
                str(m.batch),
                f"{m.p50_ms:.1f}",
                f"{m.p90_ms:.1f}",
                f"{m.p99_ms:.1f}",
                f"{m.throughput_seq_s:.1f}",
                "" if variant.load_memory_mb is None else f"{variant.load_memory_mb:.0f}",
            ]
            cells += [f"{ratios[p]:.2f}x" if p in ratios else "" for p in peers]
            lines.append("| " + " | ".join(cells) + " |")
    for variant in report.variants:
        if not variant.available:
            lines.append(f"\n{variant.label}: not measured — {variant.reason}")
    lines += sparse_kernel_lines(report)
    lines.append(
        f"\nseq {report.seq}, {report.threads} threads, OpenVINO {report.precision} inference, {report.repeats} rounds × {report.duration_s / report.repeats:.1f} s "
        f"per variant and batch; CPU: {report.cpu}. Ratios: peer p50 / variant p50 (above 1: the variant is faster)."
    )
    if report.load_average is not None:
        lines.append(
            f"Machine load average when the run started: {report.load_average:.2f} on {report.threads} threads"
            + (f" — {report.machine_load}" if report.machine_load else " (idle enough to publish)")
        )
    lines.append(f"\n{report.statement}")
    return "\n".join(lines)


def sparse_kernel_lines(report: BenchmarkReport) -> list[str]:
    """Which candidates ran pruneofa's sparse kernels, on which layers, and their speed-up over the same
    folder with the kernels off (measured in the same interleaved rounds)."""
    lines = []
    for variant in report.variants:
        if variant.role != "candidate" or variant.dense_twin_of:
            continue
        if variant.sparse_kernels:
            lines.append(f"\n{variant.label}: {variant.sparse_kernels}")
        if variant.sparse_layers:
            shown = ", ".join(variant.sparse_layers[:6]) + (" …" if len(variant.sparse_layers) > 6 else "")
            lines.append(f"  layers that ran sparse ({len(variant.sparse_layers)}): {shown}")
        twin = next((v for v in report.variants if v.dense_twin_of == variant.label), None)
        if twin is None:
            continue
        for m in variant.results:
            off = next((t for t in twin.results if t.batch == m.batch), None)
            if off is not None and m.p50_ms > 0:
                lines.append(
                    f"  batch {m.batch}: {off.p50_ms / m.p50_ms:.2f}x faster with sparse kernels than without "
                    f"({off.p50_ms:.1f} → {m.p50_ms:.1f} ms p50)"
                )
    return lines


CANDIDATE_STYLE = {"color": "tab:blue", "hatch": "", "edgecolor": "tab:blue"}
PEER_STYLE = {"color": "#bdbdbd", "hatch": "//", "edgecolor": "#555555"}
CANDIDATES_LEGEND = "candidates (your folders)"
PEERS_LEGEND = "peers (built from the source model)"


def write_chart(report: BenchmarkReport, path: Path) -> None:
    """benchmark.png: :func:`chart_figure` saved."""
    import matplotlib.pyplot as plt

    fig = chart_figure(report)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def chart_figure(report: BenchmarkReport) -> Any:
    """p50 bars and p99 ticks per variant, one panel per batch size; candidates and peers drawn apart
    (colour and hatch) and named in a legend below the panels, long labels wrapped to fit."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    batches = report.batches
    rows_per_panel = max(
        1, max(sum(1 for v in report.variants for m in v.results if m.batch == b) for b in batches)
    )
    fig, axes = plt.subplots(
        1, len(batches), figsize=(6.5 * len(batches) + 1.5, 0.55 * rows_per_panel + 2.6), squeeze=False
    )
    for ax, batch in zip(axes[0], batches, strict=True):
        rows = [(v, m) for v in report.variants for m in v.results if m.batch == batch]
        labels = [textwrap.fill(v.label, 34) for v, _ in rows]
        y = np.arange(len(rows))
        for i, (variant, m) in enumerate(rows):
            style = CANDIDATE_STYLE if variant.role == "candidate" else PEER_STYLE
            ax.barh(i, m.p50_ms, height=0.7, linewidth=0.8, **style)
            ax.annotate(
                f"p50 {m.p50_ms:.1f}",  # in figures, right of the bar and its p99 tick
                (max(m.p50_ms, m.p99_ms), i),
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ax.scatter([m.p99_ms for _, m in rows], y, marker="|", color="black", s=160, zorder=3)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        right = max([max(m.p99_ms, m.p50_ms) for _, m in rows] + [1e-3])
        ax.set_xlim(0, right * 1.15)  # room for the figures
        ax.set_xlabel("latency, ms (bar: p50, tick: p99)", fontsize=9)
        ax.set_title(f"batch {batch}, seq {report.seq}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    roles = {v.role for v in report.variants if v.results}
    handles: list[Any] = []
    if "candidate" in roles:
        handles.append(
            Patch(
                facecolor=CANDIDATE_STYLE["color"],
                edgecolor=CANDIDATE_STYLE["edgecolor"],
                label=CANDIDATES_LEGEND,
            )
        )
    if "peer" in roles:
        handles.append(
            Patch(
                facecolor=PEER_STYLE["color"],
                edgecolor=PEER_STYLE["edgecolor"],
                hatch=PEER_STYLE["hatch"],
                label=PEERS_LEGEND,
            )
        )
    handles.append(Line2D([], [], marker="|", color="black", linestyle="none", markersize=12, label="p99"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"{report.cpu}, {report.threads} threads", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
