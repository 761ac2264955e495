"""``pruneofa quickstart``: what pruneofa is for, in a few minutes, on the embedded model and packaged data.

It exports the embedded all-MiniLM-L6-v2 (dense) and a sparse twin to OpenVINO, measures both on this
CPU in one interleaved benchmark (the sparse one with pruneofa's sparse kernels, and without them), and
compares their sentence embeddings on the packaged sentences. The sparse twin is made in seconds by
one-shot magnitude pruning of the pre-trained weights, *without* the method's retraining, so its speed and
size are what the method's models get, while its fidelity is the floor the method starts from; the
summary says so, with the measured figure, and names the command that runs the method for real.

Everything goes to one folder, written atomically: ``dense/`` and ``sparse-NN/`` (exported folders),
``benchmark/``, ``summary.md``, ``summary.json`` and ``summary.png``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pruneofa.core.cliargs import cli

METHOD_COMMAND = "pruneofa run --recipe pipeline-small"


class QuickstartOptions(BaseModel):
    """Options of ``pruneofa quickstart``."""

    model_config = ConfigDict(extra="forbid")

    output: Path = Field(Path("exports/quickstart"), description="output folder")
    sparsity: float = Field(
        0.9, ge=0.5, le=0.99, description="share of encoder Linear weights zeroed in the sparse twin"
    )
    duration: float = Field(
        6.0,
        gt=0,
        le=600,
        description="timed benchmark seconds per variant and batch size, over 3 rounds "
        "(exporting, pruning, loading and warm-up come on top)",
    )
    batches: list[int] = Field(
        default_factory=lambda: [1, 16],
        description="benchmark batch sizes",
        json_schema_extra=cli(flag="--batch", metavar="N,M"),
    )
    overwrite: bool = Field(False, description="replace a non-empty output folder")


def _prune_once(source: str, sparsity: float, folder: Path) -> dict[str, float]:
    """One-shot magnitude pruning with the method's own selection (encoder and pooler Linear weights,
    the same share in every layer); returns each pruned layer's sparsity."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from pruneofa.training.masks import (
        PruningConfig,
        apply_pruning,
        remove_pruning,
        sparsity_by_module,
        update_masks,
    )

    model = AutoModel.from_pretrained(source, dtype=torch.float32, trust_remote_code=False).eval()
    config = PruningConfig()
    apply_pruning(model, config)
    update_masks(model, sparsity, config)
    remove_pruning(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source, trust_remote_code=False).save_pretrained(folder)
    return sparsity_by_module(model, config)


def _texts() -> list[str]:
    from pruneofa.core.runtime import load_parity_samples

    samples = load_parity_samples()
    return list(samples["sentences"]) + [text for pair in samples["pairs"] for text in pair]


def fidelity(dense: Any, sparse: Any, texts: list[str]) -> dict[str, float]:
    """Cosine similarity of mean-pooled, normalized sentence embeddings (the model's intended use), and
    how often each sentence's nearest neighbour among the others stays the same."""
    a = np.asarray(dense(texts, pooling="mean", normalize=True, return_tensors=True))
    b = np.asarray(sparse(texts, pooling="mean", normalize=True, return_tensors=True))
    cosine = (a * b).sum(axis=1)

    def nearest(e: np.ndarray) -> np.ndarray:
        similarity = e @ e.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(axis=1)

    return {
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "neighbour_agreement": float((nearest(a) == nearest(b)).mean()),
        "sentences": float(len(texts)),
    }


def _p50(report: Any, chosen: Callable[[Any], bool], batch: int) -> float | None:
    """The median latency at ``batch`` of the first benchmarked variant ``chosen`` accepts."""
    for variant in report.variants:
        if chosen(variant):
            for m in variant.results:
                if m.batch == batch:
                    return m.p50_ms
    return None


def _linear_sparsity(manifest: Any) -> float:
    report = manifest.sparsity
    return report.linear_zeros_after / max(report.linear_numel, 1)


def _model_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("openvino_model.*")) / 1e6


def summarize(options: QuickstartOptions, facts: dict[str, Any]) -> str:
    """The Markdown summary a newcomer reads first."""
    pct = f"{options.sparsity:.0%}"
    lines = [
        "# pruneofa quickstart: all-MiniLM-L6-v2, dense and sparse, on this CPU",
        "",
        f"CPU: {facts['cpu']}; {facts['threads']} threads; sequence length {facts['seq']}; "
        f"machine load average at the start {facts['load']}.",
        "",
        "| | dense | " + pct + " sparse, pruneofa kernels | " + pct + " sparse, no kernels |",
        "|---|---|---|---|",
    ]
    for batch in options.batches:
        row = facts["latency"][str(batch)]
        cells = [row.get(k) for k in ("dense", "sparse", "sparse_off")]
        shown = [f"{v:.1f} ms" if v is not None else "–" for v in cells]
        speedup = f" ({row['speedup']:.2f}x faster)" if row.get("speedup") else ""
        lines.append(f"| latency p50, batch {batch} | {shown[0]} | {shown[1]}{speedup} | {shown[2]} |")
    lines += [
        f"| Linear weights that are zero | {facts['dense_sparsity']:.1%} | {facts['sparse_sparsity']:.1%} | same |",
        f"| IR on disk (dense storage) | {facts['dense_mb']:.1f} MB | {facts['sparse_mb']:.1f} MB | same |",
        f"| compressed archive (`pruneofa package --format archive`) | {facts['dense_archive_mb']:.1f} MB | "
        f"{facts['sparse_archive_mb']:.1f} MB | same |",
        f"| embedding cosine vs dense (mean / min, {int(facts['fidelity']['sentences'])} sentences) | 1.000 | "
        f"{facts['fidelity']['cosine_mean']:.3f} / {facts['fidelity']['cosine_min']:.3f} | same |",
        f"| nearest-neighbour agreement vs dense | 100% | {facts['fidelity']['neighbour_agreement']:.0%} | same |",
        "",
        f"**Speed and size**: {facts['headline']} Unstructured zeros buy nothing without the kernels: OpenVINO, "
        "ONNX Runtime and PyTorch multiply the zeros. The archive keeps non-zero weights only; the word "
        "embeddings (half of MiniLM's parameters) are not pruned, as in the paper.",
        "",
        f"**Fidelity, honestly**: the sparse twin here was made in seconds by one-shot magnitude pruning of the "
        f"pre-trained weights, without the method's retraining, so its embeddings are far from the dense ones "
        f"(cosine {facts['fidelity']['cosine_mean']:.2f}; 1.0 is identical, and a usable model stays above "
        "about 0.95). That is the floor the method starts from, not its result: Prune Once for All prunes "
        "gradually during masked-LM training with distillation from the dense teacher, then fine-tunes with the "
        f"pattern locked. Run the method for real with `{METHOD_COMMAND}` (hours on a 2-core CPU, data from "
        f"the Hugging Face hub; `{METHOD_COMMAND} --steps-scale 0.01` rehearses every stage at 1 % of its steps; "
        "docs/training.md has the results and the GPU recipe).",
        "",
        "Files: `dense/` and `sparse/` (exported OpenVINO folders; `pruneofa info FOLDER`), `benchmark/` "
        "(the full benchmark report), `summary.json`, `summary.png`.",
    ]
    return "\n".join(lines)


def _chart(options: QuickstartOptions, facts: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = summary_figure(options, facts)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_figure(options: QuickstartOptions, facts: dict[str, Any]) -> Any:
    """summary.png: latency, archive size and fidelity side by side, each bar with its figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    batch = str(options.batches[0])
    names = ["dense", "sparse + kernels", "sparse, no kernels"]
    latency = [facts["latency"][batch].get(k) or 0.0 for k in ("dense", "sparse", "sparse_off")]
    bars = axes[0].barh(names, latency, color=["#888888", "#2a7ab9", "#b0c4de"])
    axes[0].bar_label(bars, fmt="%.1f ms", padding=3, fontsize=8)
    axes[0].set_xlabel(f"p50 latency, batch {batch} (ms)")
    axes[0].invert_yaxis()
    bars = axes[1].barh(
        ["dense archive", "sparse archive"],
        [facts["dense_archive_mb"], facts["sparse_archive_mb"]],
        color=["#888888", "#2a7ab9"],
    )
    axes[1].bar_label(bars, fmt="%.1f MB", padding=3, fontsize=8)
    axes[1].set_xlabel("compressed archive (MB)")
    axes[1].invert_yaxis()
    bars = axes[2].barh(
        ["cosine (mean)", "nearest neighbour"],
        [facts["fidelity"]["cosine_mean"], facts["fidelity"]["neighbour_agreement"]],
        color="#c0504d",
    )
    axes[2].bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    axes[2].set_xlim(0, 1.12)  # room for a figure beside a bar near 1
    axes[2].set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes[2].set_xlabel("fidelity vs dense (1 = identical)\none-shot pruning, no retraining")
    axes[2].invert_yaxis()
    for ax in axes[:2]:
        ax.set_xlim(0, ax.get_xlim()[1] * 1.3)  # room for the figures
    fig.suptitle(f"all-MiniLM-L6-v2: dense vs {options.sparsity:.0%} sparse on {facts['cpu']}", fontsize=10)
    fig.tight_layout()
    return fig


def quickstart(options: QuickstartOptions, *, quiet: bool = False) -> dict[str, Any]:
    """Run the quick start; returns the facts of the summary (also written to ``summary.json``)."""
    from pruneofa.core import modelio
    from pruneofa.core.cpu import detect_cpu
    from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
    from pruneofa.core.manifest import read_manifest
    from pruneofa.core.progress import Progress
    from pruneofa.deploy.benchmarking import benchmark_model
    from pruneofa.deploy.config import BenchmarkConfig, PackageConfig
    from pruneofa.deploy.packaging import package_model
    from pruneofa.deploy.pipeline import load
    from pruneofa.deploy.sparse_kernels import summary as kernel_summary
    from pruneofa.exporter import ExportConfig, export_model

    step = Progress(quiet)
    source = modelio.resolve_model_source(None)
    check_output_dir(options.output, overwrite=options.overwrite, inputs=[source.path])
    with atomic_output_dir(options.output, overwrite=options.overwrite, inputs=[source.path]) as staging:
        step(f"1/5 exporting the dense model ({source.display_name}) to OpenVINO, parity checked")
        export = ExportConfig(targets=["openvino"], task="feature-extraction", output=staging / "dense")
        export_model(source.location, export, quiet=True)
        with tempfile.TemporaryDirectory(prefix="pruneofa-quickstart-") as work:
            step(
                f"2/5 pruning a copy once to {options.sparsity:.0%} (magnitude, no retraining) and exporting it"
            )
            # Named after what it is, so the sparse export's manifest (and the name `pruneofa serve`
            # gives it) says e.g. all-MiniLM-L6-v2-pruned-90, not the temporary folder's name.
            pruned = (
                Path(work) / f"{source.display_name.replace('/', '-')}-pruned-{round(options.sparsity * 100)}"
            )
            layers = _prune_once(source.location, options.sparsity, pruned)
            sparse_export = export.model_copy(update={"output": staging / "sparse"})
            export_model(str(pruned), sparse_export, quiet=True)
        step(f"3/5 comparing sentence embeddings on {len(_texts())} packaged sentences")
        dense_pipe = load(staging / "dense", sparse_kernels="off")
        sparse_pipe = load(staging / "sparse", sparse_kernels="auto")
        agreement = fidelity(dense_pipe, sparse_pipe, _texts())
        kernels_line = kernel_summary(sparse_pipe.engine.prepared, sparse_pipe.settings.kernels_reason)
        sparse_layers = len(sparse_pipe.sparse_layers)
        del dense_pipe, sparse_pipe
        step("4/5 benchmarking dense and sparse in one interleaved run (sparse with and without the kernels)")
        report = benchmark_model(
            [staging / "dense", staging / "sparse"],
            BenchmarkConfig(
                vs=[], batches=options.batches, duration=options.duration, output=staging / "benchmark"
            ),
            quiet=True,
        )
        step("5/5 packing both models as compressed archives (non-zero weights only); the summary")
        archives_mb: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="pruneofa-quickstart-") as work:
            for name in ("dense", "sparse"):  # like with like: both as the same kind of archive
                archive = package_model(
                    staging / name, PackageConfig(format="archive", output=Path(work) / name), quiet=True
                )
                archives_mb[name] = archive.summary["archive_bytes"] / 1e6
        cpu = detect_cpu()
        latency: dict[str, dict[str, float | None]] = {}
        for batch in options.batches:
            row = {
                "dense": _p50(report, lambda v: v.location.endswith("dense"), batch),
                "sparse": _p50(
                    report, lambda v: v.location.endswith("sparse") and not v.dense_twin_of, batch
                ),
                "sparse_off": _p50(report, lambda v: v.dense_twin_of is not None, batch),
            }
            if row["dense"] and row["sparse"]:
                row["speedup"] = row["dense"] / row["sparse"]
            latency[str(batch)] = row
        dense_manifest = read_manifest(staging / "dense")
        sparse_manifest = read_manifest(staging / "sparse")
        facts = {
            "cpu": cpu.summary(),
            "threads": report.threads,
            "seq": report.seq,
            "load": f"{report.load_average:.2f}" if report.load_average is not None else "unknown",
            "latency": latency,
            "dense_sparsity": _linear_sparsity(dense_manifest),
            "sparse_sparsity": _linear_sparsity(sparse_manifest),
            "layer_sparsity": layers,
            "dense_mb": _model_mb(staging / "dense"),
            "sparse_mb": _model_mb(staging / "sparse"),
            "dense_archive_mb": archives_mb["dense"],
            "sparse_archive_mb": archives_mb["sparse"],
            "sparse_layers": sparse_layers,
            "fidelity": agreement,
            "kernels": kernels_line,
            "method_command": METHOD_COMMAND,
        }
        speedups = [
            f"{row['speedup']:.2f}x faster at batch {b}" for b, row in latency.items() if row.get("speedup")
        ]
        if sparse_layers:
            facts["headline"] = (
                f"with pruneofa's sparse kernels, the {options.sparsity:.0%} sparse model runs "
                f"{' and '.join(speedups) or '(not measured)'} than the dense one ({kernels_line})."
            )
        else:
            facts["headline"] = (
                f"pruneofa's sparse kernels did not apply on this machine ({kernels_line}), so both models ran "
                "the same dense kernels and any difference above is noise."
            )
        text = summarize(options, facts)
        (staging / "summary.md").write_text(text + "\n", encoding="utf-8")
        (staging / "summary.json").write_text(
            json.dumps(facts, indent=2, default=str) + "\n", encoding="utf-8"
        )
        _chart(options, facts, staging / "summary.png")
    print(text)  # the summary is the command's output; quiet drops only the progress lines
    step(f"done: {options.output}/summary.md, summary.png")
    return facts
