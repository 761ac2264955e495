"""``deploy.load(folder)``: an exported folder as a text-in, results-out pipeline on OpenVINO or ONNX Runtime.

Results have the shapes of Hugging Face's pipelines, so code written against ``transformers.pipeline``
keeps working: labels and scores (text classification), entities (token classification), tokens with
scores and sequences (fill-mask), hidden states or pooled embeddings (feature extraction), and answers
with character start/end and score (question answering; transformers 5 dropped that pipeline, so its
v4 algorithm is kept here: softmax over context tokens, best start × end within ``max_answer_len``,
long contexts split into overlapping windows).

Inputs are batched (``batch_size``) and each batch is padded to its own longest sequence. Inputs longer
than the model's position embeddings allow are truncated, with a warning, never an error. Tokenization
uses the OpenVINO tokenizer model (``openvino_tokenizer.xml``) when the folder has one and the task needs
no character offsets (text classification of single texts, feature extraction, fill-mask); question
answering and token classification need offsets, which only the Hugging Face fast tokenizer gives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pruneofa.core.cpu import CpuInfo, detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.inference import INFERENCE_TASKS, Encoder, Pipeline, Stats
from pruneofa.core.manifest import Manifest, read_manifest
from pruneofa.core.runtime import (
    OPENVINO_TOKENIZER_XML,
    Engine,
    model_file_for,
    resolve_runtime,
)
from pruneofa.core.support import EXPORT_TASKS, ExportTask
from pruneofa.deploy import sparse_kernels as kernel_policy
from pruneofa.deploy.settings import CompileSettings, Hint, choose_settings, count_sparse_kernels
from pruneofa.exporter import graph

logger = logging.getLogger("pruneofa.deploy")


def _task_of(folder: Path, manifest: Manifest | None, config: Any) -> ExportTask:
    if manifest is not None and manifest.export is not None:
        return EXPORT_TASKS[manifest.export.task]
    from pruneofa.core import modelio

    return modelio.resolve_task(config, None)


def load(
    folder: str | Path,
    runtime: str | None = None,
    *,
    hint: Hint = "latency",
    batch_size: int = 16,
    max_length: int | None = None,
    threads: int | None = None,
    streams: int | None = None,
    use_openvino_tokenizer: bool = True,
    cpu: CpuInfo | None = None,
    sparse_kernels: str = "auto",
) -> Pipeline:
    """Load an exported (or calibrated) folder as a pipeline for its task.

    ``runtime``: ``openvino`` or ``onnxruntime`` (default: OpenVINO for an IR folder, ONNX Runtime for an
    ONNX one). ``hint``/``threads``/``streams`` override the compile settings chosen for this CPU
    (:func:`deploy.settings.choose_settings`); ``max_length`` lowers the truncation length.
    ``sparse_kernels`` (``auto``, ``on``, ``off``): pruneofa's sparse kernels for OpenVINO
    (:mod:`pruneofa.deploy.sparse_kernels`); ``pipeline.sparse_report`` says which layers ran sparse.
    """
    from transformers import AutoConfig, AutoTokenizer

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{path} is not a folder; give a folder written by 'pruneofa export' or 'pruneofa calibrate'"
        )
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    from pruneofa.core.modelio import refuse_custom_code

    refuse_custom_code(path)  # one clear "unsupported" line for a folder that ships its own model code
    chosen = resolve_runtime(path, runtime)
    model_file = model_file_for(path, chosen)
    manifest = read_manifest(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{path} lacks a usable config.json or tokenizer ({type(err).__name__}); export the model with its "
            "tokenizer files"
        ) from err
    export_task = _task_of(path, manifest, config)
    task = INFERENCE_TASKS[export_task.name]
    limit = graph.max_sequence_length(config)
    if max_length is not None:
        if max_length < 2:
            raise InputError("max_length must be at least 2")
        limit = min(limit, max_length)
    weight_format = manifest.export.weight_format if manifest and manifest.export else None
    cpu = cpu or detect_cpu()
    settings = choose_settings(
        cpu,
        chosen,
        hint=hint,
        weight_format=weight_format,
        sparsity=manifest.sparsity if manifest else None,
        threads=threads,
        streams=streams,
        sparse_kernels=sparse_kernels,
    )
    engine = Engine(
        model_file,
        chosen,
        export_task.outputs,
        ov_config=settings.openvino_config(profile=settings.sparse.enabled) if chosen == "openvino" else None,
        ort_options=settings.onnxruntime_options() if chosen == "onnxruntime" else None,
        prepare=kernel_policy.preparer(settings.kernels, manifest, int8_gemm=cpu.has_int8_dot),
    )
    ov_tokenizer = None
    if use_openvino_tokenizer and task.openvino_tokenizer and (path / OPENVINO_TOKENIZER_XML).is_file():
        ov_tokenizer = _compile_ov_tokenizer(path / OPENVINO_TOKENIZER_XML)
    stats = Stats()
    encoder = Encoder(tokenizer, limit, ov_tokenizer, stats)
    pipeline = task.pipeline(
        folder=path.resolve(),
        task=task,
        runtime=chosen,
        settings=settings,
        engine=engine,
        encoder=encoder,
        config=config,
        manifest=manifest,
        batch_size=batch_size,
        stats=stats,
        kernels=kernel_policy.summary(engine.prepared, settings.kernels_reason),
    )
    if settings.sparse.enabled:
        feed = encoder.encode(["sparse kernels check"])
        sparse_layers, fc_layers = count_sparse_kernels(engine.profile(feed))
        pipeline.settings = _replace_sparse(settings, sparse_layers, fc_layers)
    return pipeline


def _replace_sparse(settings: CompileSettings, sparse_layers: int, fc_layers: int) -> CompileSettings:
    from dataclasses import replace

    return replace(settings, sparse=settings.sparse.with_verification(sparse_layers, fc_layers))


def _compile_ov_tokenizer(path: Path) -> Any:
    """The folder's OpenVINO tokenizer model compiled for CPU; ``None`` (HF tokenizer used) where it fails."""
    try:
        import openvino as ov
        import openvino_tokenizers  # noqa: F401  (registers the tokenizer operations)

        return ov.Core().compile_model(str(path), "CPU")
    except Exception as err:  # an extension/version mismatch: fall back, and say so
        logger.warning("cannot compile %s (%s); using the Hugging Face tokenizer", path, err)
        return None
