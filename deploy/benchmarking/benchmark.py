"""``pruneofa benchmark``: latency and throughput of exported folders beside the peers a user would
otherwise run, in one process, on the same inputs, interleaved so that machine noise hits all alike.

Peers are built from the source model recorded in the (first) folder's ``pruneofa.json`` lineage
(:mod:`.peers`).

Inputs are random token ids of exactly ``seq`` tokens (no padding), the same array for every variant.
For each batch size: warm-up, then ``repeats`` rounds; in each round every variant runs for
``duration / repeats`` seconds in turn. Percentiles are per round; the report gives their medians over
rounds, throughput likewise (:mod:`.measurement`), and ratios of medians against each peer
(:mod:`.report`, which also writes the table and the chart).

Once the candidates are loaded, and before anything is measured, the run prints its estimate of the time
left and then reports each phase with the time elapsed and left (:mod:`.plan`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pruneofa.core import modelio
from pruneofa.core.cpu import detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import library_versions, now_utc, read_manifest, write_manifest
from pruneofa.core.runtime import ONNX_FILE, OPENVINO_XML, is_exported_folder
from pruneofa.deploy.benchmarking.measurement import (
    busy_machine,
    interleaved_rounds,
    machine_load_average,
    make_feed,
    passive_openmp,
)
from pruneofa.deploy.benchmarking.peers import Variant, candidate_variant, peer_variant, source_model_of
from pruneofa.deploy.benchmarking.plan import (
    STATIC_COMPILE_SHARE,
    Phase,
    PhaseProgress,
    VariantCost,
    call_ms,
    estimate_line,
    measured_costs,
    parameters_millions,
    peer_phase,
    plan_phases,
)
from pruneofa.deploy.benchmarking.report import (
    BenchmarkReport,
    add_ratios,
    display_names,
    markdown_table,
    report_manifest,
    verdict,
    write_chart,
)
from pruneofa.deploy.config import BenchmarkConfig
from pruneofa.deploy.settings import check_precision
from pruneofa.exporter import graph


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

    started = time.perf_counter()
    step = PhaseProgress(quiet, bar=sys.stderr.isatty())
    step(passive_openmp())  # before any peer imports PyTorch
    try:
        return _benchmark(folders, config, command, step, started)
    finally:
        step.close()


def _benchmark(
    folders: str | Path | list[str | Path],
    config: BenchmarkConfig,
    command: list[str] | None,
    step: PhaseProgress,
    started: float,
) -> BenchmarkReport:
    paths = [Path(f).expanduser().resolve() for f in (folders if isinstance(folders, list) else [folders])]
    if not paths:
        raise InputError("give at least one FOLDER to benchmark")
    for path in paths:
        if not is_exported_folder(path):
            raise InputError(
                f"{path} is not an exported folder (no {OPENVINO_XML} or {ONNX_FILE}); run 'pruneofa export' first"
            )
    output = config.output or Path("bench-out") / "benchmark" / paths[0].name
    check_output_dir(output, overwrite=config.overwrite, inputs=paths)
    cpu = detect_cpu()
    check_precision(cpu, config.precision)
    threads = config.threads or cpu.cores
    source = source_model_of(paths[0])
    step(
        f"CPU: {cpu.summary()}; {threads} threads for every variant, OpenVINO at {config.precision}; "
        f"source model: {source or 'unknown'}"
    )
    load_average = machine_load_average()
    busy = busy_machine(cpu.cores, load_average)
    if load_average is not None:
        step(f"machine load average {load_average:.2f} on {cpu.cores} cores")
    if busy:
        step(busy)

    hf_config = modelio.load_config(modelio.folder_source(paths[0]))
    tokenizer = modelio.load_tokenizer(modelio.folder_source(paths[0]))
    manifest = read_manifest(paths[0])
    input_names = (
        list(manifest.export.inputs) if manifest and manifest.export else ["input_ids", "attention_mask"]
    )
    seq = min(config.seq, graph.max_sequence_length(hf_config))
    first_feed = make_feed(tokenizer, input_names, 1, seq, int(hf_config.vocab_size))
    variants: list[Variant] = []
    costs: list[VariantCost] = []
    names = display_names(paths)

    def load(path: Path, mode: str, twin_of: str | None = None) -> Variant:
        loading = time.perf_counter()
        variant = candidate_variant(
            path, threads, first_feed, mode, twin_of=twin_of, name=names[path], precision=config.precision
        )
        load_s = time.perf_counter() - loading
        compile_s = STATIC_COMPILE_SHARE * load_s if variant.static_shapes else 0.0
        costs.append(VariantCost(variant.report.label, call_ms(variant, first_feed), compile_s))
        variants.append(variant)
        return variant

    for path in paths:
        step(f"loading candidate {path}")
        variant = load(path, config.sparse_kernels)
        step(f"  {variant.report.sparse_kernels}")
        if variant.report.sparse_layers:  # the same folder without the kernels, measured in the same rounds
            load(path, "off", twin_of=variant.report.label)
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

    millions = parameters_millions(hf_config)

    def plan(
        known: list[VariantCost], peers: list[str], peer_costs: list[VariantCost] | None, batches: list[int]
    ) -> list[Phase]:
        return plan_phases(
            known,
            peers,
            peer_costs,
            millions=millions,
            batches=batches,
            duration=config.duration,
            repeats=config.repeats,
            warmup=config.warmup,
        )

    built: list[str] = (
        list(config.vs) if source is not None else []
    )  # without a source, every peer is unavailable
    phases = plan(costs, built, None, config.batches)
    step(
        estimate_line(
            phases,
            variants=len(variants) + len(built),
            batches=len(config.batches),
            duration=config.duration,
            repeats=config.repeats,
        )
    )
    step.set_plan(phases)
    with tempfile.TemporaryDirectory(prefix="pruneofa-bench-") as work:
        peers: list[Variant] = []
        for kind in config.vs:
            if kind in built:
                step.start(peer_phase(kind))
            peers.append(
                peer_variant(kind, source, task, threads, Path(work), step, first_feed, config.precision)
            )
        variants += peers
        step.finish()
        if built:  # the peers have run once: plan the rest with their speed instead of a guess
            peer_costs = [
                VariantCost(p.report.label, call_ms(p, first_feed)) for p in peers if p.run is not None
            ]
            step.set_plan(plan(costs, [], peer_costs, config.batches))
            step.note("peers built; the estimate now uses their measured speed")
        runnable = [v for v in variants if v.run is not None]
        for index, batch in enumerate(config.batches):
            feed = make_feed(tokenizer, input_names, batch, seq, int(hf_config.vocab_size))
            interleaved_rounds(
                runnable,
                feed,
                batch,
                warmup=config.warmup,
                repeats=config.repeats,
                duration=config.duration,
                step=step,
            )
            runnable = [v for v in runnable if v.report.available]
            rest = config.batches[index + 1 :]
            if rest:  # plan the remaining batch sizes from this one's medians, steadier than two calls
                step.set_plan(plan(measured_costs(runnable, batch, costs), [], [], rest))

    reports = [v.report for v in variants]
    add_ratios(reports)
    fastest, statement = verdict(reports, cpu, config.batches)
    report = BenchmarkReport(
        created_at=now_utc(),
        cpu=cpu.summary(),
        isa=cpu.isa,
        threads=threads,
        precision=config.precision,
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
    step.start("writing the report")
    with atomic_output_dir(output, overwrite=config.overwrite, inputs=paths) as staging:
        write_manifest(staging, report_manifest(paths[0], report))
        (staging / "benchmark.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (staging / "benchmark.md").write_text(markdown_table(report) + "\n", encoding="utf-8")
        write_chart(report, staging / "benchmark.png")
    step.close()
    step(f"done: {output}/benchmark.json, benchmark.md, benchmark.png")
    return report
