"""``pruneofa benchmark``: latency and throughput of exported folders beside the peers a user would
otherwise run, in one process, on the same inputs, interleaved so that machine noise hits all alike.

Peers are built from the source model recorded in the (first) folder's ``pruneofa.json`` lineage:

* ``torch``: that PyTorch model, FP32, eager (``torch.no_grad``);
* ``onnxruntime``: the same model exported to ONNX (PyTorch's dynamo exporter), ONNX Runtime FP32;
* ``optimum-intel``: optimum-intel's own OpenVINO export of it (``OVModelFor*.from_pretrained(export=True)``)
  quantized to INT8 by its own ``OVQuantizer`` (defaults, calibrated on pruneofa's packaged sentences).

Inputs are random token ids of exactly ``seq`` tokens (no padding), the same array for every variant.
For each batch size: warm-up, then ``repeats`` rounds; in each round every variant runs for
``duration / repeats`` seconds in turn. Percentiles are per round; the report gives their medians over
rounds, throughput likewise, and ratios of medians against each peer. A peer that cannot be built is
reported with the reason instead of failing the run.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from pruneofa.core.cpu import detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    Manifest,
    SourceInfo,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.core.progress import Progress, quiet_libraries
from pruneofa.core.runtime import (
    ONNX_FILE,
    OPENVINO_XML,
    is_exported_folder,
    load_parity_samples,
    ort_session,
)
from pruneofa.deploy.config import BenchmarkConfig
from pruneofa.exporter import graph

PEER_LABELS = {
    "torch": "PyTorch FP32 eager",
    "onnxruntime": "ONNX Runtime FP32",
    "optimum-intel": "optimum-intel OpenVINO INT8",
}


class Measurement(BaseModel):
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_seq_s: float
    iterations: int
    rounds: int


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


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def busy_machine(cores: int, load: float | None = None) -> str | None:
    """A warning when other processes already keep the cores busy (1-minute load average).

    Measured here: with one of two cores taken by a training run, PyTorch eager MiniLM at batch 1 took
    916 ms with 2 OpenMP threads and 55 ms with 1 (OpenMP threads wait at every barrier for a core);
    latencies, and ratios against PyTorch most of all, are then not what an idle machine gives.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            return None
    if load < 0.5 * cores:
        return None
    return (
        f"warning: the machine is busy (load average {load:.1f} on {cores} cores); latencies will be inflated, "
        "PyTorch's OpenMP threads most of all — measure on an idle machine for figures to publish"
    )


@dataclass
class _Variant:
    report: VariantReport
    run: Callable[[dict[str, np.ndarray]], Any] | None = None
    keep: Any = None  # objects that must stay alive while the variant runs


class _PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 5 ms), minus the start."""

    def __enter__(self) -> _PeakRss:
        import psutil

        self._process = psutil.Process()
        gc.collect()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def megabytes(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


def source_model_of(folder: Path) -> str | None:
    """The PyTorch model a folder was exported from, read from its pruneofa.json lineage."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    entries = [*manifest.lineage, manifest.as_lineage()]
    for entry in reversed(entries):
        if entry.stage == "export":
            return entry.source
    return None


def make_feed(tokenizer: Any, input_names: list[str], batch: int, seq: int, vocab: int, seed: int = 0):
    """``batch`` × ``seq`` random ordinary tokens between the tokenizer's start and end tokens."""
    rng = np.random.default_rng(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ordinary = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    ids = ordinary[rng.integers(0, len(ordinary), size=(batch, seq))]
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is not None:
        ids[:, 0] = start
    if end is not None:
        ids[:, -1] = end
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = np.zeros_like(ids)
    return feed


def _specialize(variant: _Variant, feed: dict[str, np.ndarray]) -> None:
    """Wait for a candidate's static-shape compilation for this batch (sparse kernels), so the rounds
    measure what a long-running server gets, not the background compile or the dynamic model."""
    engine = getattr(variant.keep, "engine", None)  # candidates keep their pipeline; peers have none
    if engine is not None:
        engine.specialize(feed)


def _candidate(
    folder: Path,
    threads: int,
    first_feed: dict[str, np.ndarray],
    sparse_kernels: str,
    twin_of: str | None = None,
    name: str | None = None,
) -> _Variant:
    from pruneofa.deploy.pipeline import load
    from pruneofa.deploy.sparse_kernels import summary

    manifest = read_manifest(folder)
    weights = (manifest.export.weight_format.upper() if manifest and manifest.export else "?") + (
        " shrunk" if manifest and manifest.shrink else ""
    )
    with _PeakRss() as memory:
        pipeline = load(folder, threads=threads, sparse_kernels=sparse_kernels)
        pipeline.engine(first_feed)
    layers = pipeline.sparse_layers
    kernels = " + sparse kernels" if layers else (", sparse kernels off" if twin_of else "")
    report = VariantReport(
        label=f"{name or folder.name} ({pipeline.runtime} {weights}{kernels})",
        role="candidate",
        runtime=pipeline.runtime,
        weights=weights,
        location=str(folder),
        settings=pipeline.settings.describe(),
        load_memory_mb=memory.megabytes,
        sparse_kernels=summary(pipeline.engine.prepared, pipeline.settings.kernels_reason)
        + ("; each batch runs on a static-shape copy" if pipeline.engine.static_limit else ""),
        sparse_layers=layers,
        dense_twin_of=twin_of,
    )
    return _Variant(report, pipeline.engine, pipeline)


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


def _peer(
    kind: str, source: str | None, task: Any, threads: int, work: Path, step: Progress, first_feed: dict
) -> _Variant:
    label = PEER_LABELS[kind]
    runtime = {"torch": "pytorch", "onnxruntime": "onnxruntime", "optimum-intel": "openvino"}[kind]
    weights = "INT8" if kind == "optimum-intel" else "FP32"
    report = VariantReport(label=label, role="peer", runtime=runtime, weights=weights, location=source)
    if source is None:
        report.available, report.reason = (
            False,
            "no source model recorded in the folder's pruneofa.json lineage",
        )
        return _Variant(report)
    try:
        builder = {"torch": _torch_peer, "onnxruntime": _ort_peer, "optimum-intel": _optimum_peer}[kind]
        step(f"building peer: {label} from {source}")
        return builder(report, source, task, threads, work, first_feed)
    except Exception as err:  # a peer that cannot be built is reported, not fatal
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        report.available = False
        report.reason = f"could not be built: {type(err).__name__}: {lines[0] if lines else ''}"[:400]
        step(f"peer {label} skipped: {report.reason}")
        return _Variant(report)


def _torch_peer(
    report: VariantReport, source: str, task: Any, threads: int, work: Path, first_feed: dict
) -> _Variant:
    import torch

    from pruneofa.core import modelio

    torch.set_num_threads(threads)

    def run(feed: dict[str, np.ndarray]) -> Any:
        with torch.no_grad():
            return model(**{k: torch.from_numpy(v) for k, v in feed.items()})

    with _PeakRss() as memory:
        model = modelio.load_model(modelio.resolve_model_source(source), task)
        run(first_feed)

    report.settings = f"torch.set_num_threads({threads}), eager, no_grad"
    report.load_memory_mb = memory.megabytes
    return _Variant(report, run, model)


def _ort_peer(
    report: VariantReport, source: str, task: Any, threads: int, work: Path, first_feed: dict
) -> _Variant:
    import onnxruntime as ort

    from pruneofa.core import modelio
    from pruneofa.exporter import graph

    model_source = modelio.resolve_model_source(source)
    config = modelio.load_config(model_source)
    model = modelio.load_model(model_source, task)
    path = work / "peer-onnx" / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_libraries("nncf", "optimum", "transformers", "torch.onnx", "openvino", capture=True):
        graph.export_onnx(model, modelio.architecture_spec(config), task, path, opset=18)
    del model
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    names = list(task.outputs)
    with _PeakRss() as memory:
        session = ort_session(path, options)
        inputs = [i.name for i in session.get_inputs()]
        session.run(names, {k: first_feed[k] for k in inputs})
    report.settings = (
        f"ORT_ENABLE_ALL, intra_op {threads} threads; exported with torch.onnx (dynamo, opset 18)"
    )
    report.load_memory_mb = memory.megabytes
    return _Variant(report, lambda feed: session.run(names, {k: feed[k] for k in inputs}), session)


def _optimum_peer(
    report: VariantReport, source: str, task: Any, threads: int, work: Path, first_feed: dict
) -> _Variant:
    import nncf
    import optimum.intel as oi
    from transformers import AutoTokenizer

    model_class = getattr(oi, task.optimum_ov_class)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    sentences = load_parity_samples()["sentences"][:32]
    samples = [dict(tokenizer(s, return_tensors="np")) for s in sentences]
    exported, quantized = work / "optimum-fp32", work / "optimum-int8"
    with quiet_libraries("nncf", "optimum", "transformers", "torch.onnx", "openvino", capture=True):
        model = model_class.from_pretrained(source, export=True, compile=False, trust_remote_code=False)
        inputs = {next(iter(p.get_names())) for p in model.model.inputs}
        dataset = nncf.Dataset(
            [{k: v.astype(np.int64) for k, v in s.items() if k in inputs} for s in samples]
        )
        model.save_pretrained(exported)
        quantizer = oi.OVQuantizer(model)
        quantizer.quantize(
            calibration_dataset=dataset,
            ov_config=oi.OVConfig(quantization_config=oi.OVQuantizationConfig(num_samples=len(samples))),
            save_directory=quantized,
        )
        del model, quantizer
        gc.collect()
        ov_config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads}

        def run(feed: dict[str, np.ndarray]) -> Any:
            return int8(**{k: v for k, v in feed.items() if k in inputs})

        with _PeakRss() as memory:
            int8 = model_class.from_pretrained(quantized, ov_config=ov_config, trust_remote_code=False)
            run(first_feed)

    report.settings = (
        f"OVQuantizer + OVQuantizationConfig() defaults on {len(samples)} sentences; LATENCY hint, 1 stream × "
        f"{threads} threads; called through {task.optimum_ov_class}"
    )
    report.load_memory_mb = memory.megabytes
    return _Variant(report, run, int8)


def _measure(run: Callable, feed: dict[str, np.ndarray], seconds: float, minimum: int = 3) -> list[float]:
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < minimum or time.perf_counter() < deadline:
        started = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _summarize(batch: int, rounds: list[list[float]]) -> Measurement:
    per_round = [np.percentile(r, [50, 90, 99]) for r in rounds]
    throughput = [batch * len(r) / (sum(r) / 1000.0) for r in rounds]
    return Measurement(
        batch=batch,
        p50_ms=round(float(np.median([p[0] for p in per_round])), 3),
        p90_ms=round(float(np.median([p[1] for p in per_round])), 3),
        p99_ms=round(float(np.median([p[2] for p in per_round])), 3),
        throughput_seq_s=round(float(np.median(throughput)), 2),
        iterations=sum(len(r) for r in rounds),
        rounds=len(rounds),
    )


def benchmark_model(
    folders: str | Path | list[str | Path],
    config: BenchmarkConfig,
    *,
    command: list[str] | None = None,
    quiet: bool = False,
) -> BenchmarkReport:
    """Benchmark one or more exported folders (candidates) against the peers in ``config.vs``.

    The peers come from the first folder's source model; every candidate is compared with the same peers.
    Writes ``benchmark.json``, ``benchmark.md`` and ``benchmark.png`` to ``config.output`` (atomically)."""
    from transformers import AutoConfig, AutoTokenizer

    started = time.perf_counter()
    step = Progress(quiet)
    paths = [Path(f).expanduser().resolve() for f in (folders if isinstance(folders, list) else [folders])]
    if not paths:
        raise InputError("give at least one FOLDER to benchmark")
    for path in paths:
        if not is_exported_folder(path):
            raise InputError(
                f"{path} is not an exported folder (no {OPENVINO_XML} or {ONNX_FILE}); run 'pruneofa export' first"
            )
    output = config.output or Path("bench-out") / "benchmark" / paths[0].name
    check_output_dir(output, overwrite=config.overwrite)
    cpu = detect_cpu()
    threads = config.threads or cpu.cores
    source = source_model_of(paths[0])
    step(f"CPU: {cpu.summary()}; {threads} threads for every variant; source model: {source or 'unknown'}")
    load_average = _load_average()
    busy = busy_machine(cpu.cores, load_average)
    if load_average is not None:
        step(f"machine load average {load_average:.2f} on {cpu.cores} cores")
    if busy:
        step(busy)

    hf_config = AutoConfig.from_pretrained(paths[0], trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(paths[0], trust_remote_code=False)
    manifest = read_manifest(paths[0])
    input_names = (
        list(manifest.export.inputs) if manifest and manifest.export else ["input_ids", "attention_mask"]
    )
    seq = min(config.seq, graph.max_sequence_length(hf_config))
    first_feed = make_feed(tokenizer, input_names, 1, seq, int(hf_config.vocab_size))
    variants: list[_Variant] = []
    names = display_names(paths)
    for path in paths:
        step(f"loading candidate {path}")
        variant = _candidate(path, threads, first_feed, config.sparse_kernels, name=names[path])
        variants.append(variant)
        step(f"  {variant.report.sparse_kernels}")
        if variant.report.sparse_layers:  # the same folder without the kernels, measured in the same rounds
            variants.append(
                _candidate(path, threads, first_feed, "off", twin_of=variant.report.label, name=names[path])
            )
    first = variants[0].keep
    task = first.task
    for candidate in variants[1:]:
        if candidate.keep.task.name != task.name:
            raise InputError(
                f"{candidate.report.location} is a {candidate.keep.task.name} model but {paths[0]} is {task.name}; "
                "benchmark folders of one task together"
            )
    seq = min(seq, min(v.keep.max_length for v in variants))
    if seq < config.seq:
        step(f"--seq {config.seq} is longer than the models allow; using {seq}")

    with tempfile.TemporaryDirectory(prefix="pruneofa-bench-") as work:
        for kind in config.vs:
            variants.append(_peer(kind, source, task, threads, Path(work), step, first_feed))
        runnable = [v for v in variants if v.run is not None]
        for batch in config.batches:
            feed = make_feed(tokenizer, input_names, batch, seq, int(hf_config.vocab_size))
            step(f"batch {batch}, seq {seq}: warm-up ({config.warmup} runs each)")
            for variant in list(runnable):
                try:
                    _specialize(variant, feed)
                    for _ in range(max(config.warmup, 1)):
                        variant.run(feed)
                except Exception as err:  # a runtime error in one variant is reported, not fatal
                    variant.report.available = False
                    variant.report.reason = f"failed at batch {batch}: {type(err).__name__}: {str(err)[:200]}"
                    runnable.remove(variant)
            rounds: dict[int, list[list[float]]] = {id(v): [] for v in runnable}
            share = config.duration / config.repeats
            for round_index in range(config.repeats):
                step(f"batch {batch}: round {round_index + 1}/{config.repeats} ({share:.1f} s per variant)")
                for variant in runnable:
                    rounds[id(variant)].append(_measure(variant.run, feed, share))
            for variant in runnable:
                variant.report.results.append(_summarize(batch, rounds[id(variant)]))

    reports = [v.report for v in variants]
    _ratios(reports)
    fastest, statement = _verdict(reports, cpu, config.batches)
    report = BenchmarkReport(
        created_at=now_utc(),
        cpu=cpu.summary(),
        isa=cpu.isa,
        threads=threads,
        seq=seq,
        batches=config.batches,
        duration_s=config.duration,
        repeats=config.repeats,
        source_model=source,
        variants=reports,
        fastest=fastest,
        statement=statement,
        command=command or ["pruneofa.deploy.benchmark_model", *map(str, paths)],
        versions=library_versions(),
        wall_time_s=round(time.perf_counter() - started, 1),
        machine_load=busy,
        load_average=load_average,
    )
    with atomic_output_dir(output, overwrite=config.overwrite) as staging:
        write_manifest(staging, _manifest(paths[0], report))
        (staging / "benchmark.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (staging / "benchmark.md").write_text(markdown_table(report) + "\n", encoding="utf-8")
        write_chart(report, staging / "benchmark.png")
    step(f"done: {output}/benchmark.json, benchmark.md, benchmark.png")
    return report


def _manifest(folder: Path, report: BenchmarkReport) -> Manifest:
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


def _ratios(reports: list[VariantReport]) -> None:
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


def _verdict(reports: list[VariantReport], cpu: Any, batches: list[int]) -> tuple[dict[str, str], str]:
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
        f"\nseq {report.seq}, {report.threads} threads, {report.repeats} rounds × {report.duration_s / report.repeats:.1f} s "
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


def write_chart(report: BenchmarkReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = report.batches
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 0.5 * len(report.variants) + 2))
    axes = np.atleast_1d(axes)
    for ax, batch in zip(axes, batches, strict=True):
        rows = [(v, m) for v in report.variants for m in v.results if m.batch == batch]
        labels = [v.label for v, _ in rows]
        p50 = [m.p50_ms for _, m in rows]
        p99 = [m.p99_ms for _, m in rows]
        colors = ["tab:blue" if v.role == "candidate" else "tab:gray" for v, _ in rows]
        y = np.arange(len(rows))
        ax.barh(y, p50, color=colors)
        ax.scatter(p99, y, marker="|", color="black", s=120, label="p99")
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("latency, ms (bar: p50, tick: p99)")
        ax.set_title(f"batch {batch}, seq {report.seq}")
    fig.suptitle(f"{report.cpu}, {report.threads} threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
