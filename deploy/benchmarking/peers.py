"""What the benchmark runs: each exported folder as pruneofa deploys it (a candidate, and the same folder
with sparse kernels off when they ran), and the peers a user would otherwise run, built from the source
model recorded in the folder's ``pruneofa.json`` lineage:

* ``torch``: that PyTorch model, FP32, eager (``torch.no_grad``), called as validation calls it
  (:class:`~pruneofa.core.runtime.TorchRunner`);
* ``onnxruntime``: the same model exported to ONNX (PyTorch's dynamo exporter), ONNX Runtime FP32;
* ``optimum-intel``: optimum-intel's own OpenVINO export of it (``OVModelFor*.from_pretrained(export=True)``)
  quantized to INT8 by its own ``OVQuantizer`` (defaults, calibrated on pruneofa's packaged sentences).

A peer that cannot be built is reported with the reason instead of failing the run.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.choices import DEFAULT_PRECISION, Precision
from pruneofa.core.manifest import read_manifest
from pruneofa.core.progress import Progress, quiet_libraries
from pruneofa.core.runtime import ONNX_FILE, TorchRunner, load_parity_samples, ort_session
from pruneofa.deploy.benchmarking.measurement import PeakRss
from pruneofa.deploy.benchmarking.report import VariantReport

PEER_LABELS = {
    "torch": "PyTorch FP32 eager",
    "onnxruntime": "ONNX Runtime FP32",
    "optimum-intel": "optimum-intel OpenVINO INT8",
}


@dataclass
class Variant:
    """One thing measured: its report (filled in as it is measured), the callable that runs a feed, and
    the objects that must stay alive while it runs (a candidate keeps its pipeline)."""

    report: VariantReport
    run: Callable[[dict[str, np.ndarray]], Any] | None = None
    keep: Any = None

    @property
    def static_shapes(self) -> bool:
        """Whether this variant runs each batch on a static-shape copy it compiles first (every OpenVINO
        candidate)."""
        return bool(getattr(getattr(self.keep, "engine", None), "static_limit", 0))

    def specialize(self, feed: dict[str, np.ndarray]) -> None:
        """Wait for a candidate's static-shape compilation for this batch, so the rounds
        measure what a long-running server gets, not the background compile or the dynamic model."""
        engine = getattr(self.keep, "engine", None)  # candidates keep their pipeline; peers have none
        if engine is not None:
            engine.specialize(feed)


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


def candidate_variant(
    folder: Path,
    threads: int,
    first_feed: dict[str, np.ndarray],
    sparse_kernels: str,
    twin_of: str | None = None,
    name: str | None = None,
    precision: Precision = DEFAULT_PRECISION,
) -> Variant:
    """An exported folder loaded as ``pruneofa.deploy.load`` loads it, run once on ``first_feed``;
    ``twin_of`` names the variant this one re-runs with sparse kernels off."""
    from pruneofa.deploy.pipeline import load
    from pruneofa.deploy.sparse_kernels import summary

    manifest = read_manifest(folder)
    weights = (manifest.export.weight_format.upper() if manifest and manifest.export else "?") + (
        " shrunk" if manifest and manifest.shrink else ""
    )
    with PeakRss() as memory:
        # every OpenVINO candidate, dense or sparse, kernels on or off, runs each batch on a static-shape
        # copy: the sparse ones need it, and giving it to them alone would compare unlike compiles
        pipeline = load(
            folder, threads=threads, sparse_kernels=sparse_kernels, precision=precision, static_shapes="all"
        )
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
    return Variant(report, pipeline.engine, pipeline)


def peer_variant(
    kind: str,
    source: str | None,
    task: Any,
    threads: int,
    work: Path,
    step: Progress,
    first_feed: dict,
    precision: Precision = DEFAULT_PRECISION,
) -> Variant:
    """The peer ``kind`` built from ``source`` for ``task`` (an export task), in ``work``; unavailable,
    with the reason, when it cannot be built. ``precision``: OpenVINO's inference precision for the
    optimum-intel peer, the candidates' (PyTorch and ONNX Runtime run FP32)."""
    label = PEER_LABELS[kind]
    runtime = {"torch": "pytorch", "onnxruntime": "onnxruntime", "optimum-intel": "openvino"}[kind]
    weights = "INT8" if kind == "optimum-intel" else "FP32"
    report = VariantReport(label=label, role="peer", runtime=runtime, weights=weights, location=source)
    if source is None:
        report.available, report.reason = (
            False,
            "no source model recorded in the folder's pruneofa.json lineage",
        )
        return Variant(report)
    try:
        if kind == "optimum-intel":
            return _optimum_peer(report, source, task, threads, work, first_feed, precision)
        builder = {"torch": _torch_peer, "onnxruntime": _ort_peer}[kind]
        return builder(report, source, task, threads, work, first_feed)
    except Exception as err:  # a peer that cannot be built is reported, not fatal
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        report.available = False
        report.reason = f"could not be built: {type(err).__name__}: {lines[0] if lines else ''}"[:400]
        step(f"peer {label} skipped: {report.reason}")
        return Variant(report)


def _torch_peer(
    report: VariantReport, source: str, task: Any, threads: int, work: Path, first_feed: dict
) -> Variant:
    import torch

    from pruneofa.core import modelio

    torch.set_num_threads(threads)
    with PeakRss() as memory:
        model = modelio.load_model(modelio.resolve_model_source(source), task)
        run = TorchRunner(model, task.outputs)
        run(first_feed)

    report.settings = f"torch.set_num_threads({threads}), eager, no_grad"
    report.load_memory_mb = memory.megabytes
    return Variant(report, run, model)


def _ort_peer(
    report: VariantReport, source: str, task: Any, threads: int, work: Path, first_feed: dict
) -> Variant:
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
    with PeakRss() as memory:
        session = ort_session(path, options)
        inputs = [i.name for i in session.get_inputs()]
        session.run(names, {k: first_feed[k] for k in inputs})
    report.settings = (
        f"ORT_ENABLE_ALL, intra_op {threads} threads; exported with torch.onnx (dynamo, opset 18)"
    )
    report.load_memory_mb = memory.megabytes
    return Variant(report, lambda feed: session.run(names, {k: feed[k] for k in inputs}), session)


def _optimum_peer(
    report: VariantReport,
    source: str,
    task: Any,
    threads: int,
    work: Path,
    first_feed: dict,
    precision: Precision = DEFAULT_PRECISION,
) -> Variant:
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
        ov_config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,  # the candidates' precision, not the plugin's default
        }

        def run(feed: dict[str, np.ndarray]) -> Any:
            return int8(**{k: v for k, v in feed.items() if k in inputs})

        with PeakRss() as memory:
            int8 = model_class.from_pretrained(quantized, ov_config=ov_config, trust_remote_code=False)
            run(first_feed)

    report.settings = (
        f"OVQuantizer + OVQuantizationConfig() defaults on {len(samples)} sentences; LATENCY hint, 1 stream × "
        f"{threads} threads, {precision} inference; called through {task.optimum_ov_class}"
    )
    report.load_memory_mb = memory.megabytes
    return Variant(report, run, int8)
