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

from pruneofa.core import modelio
from pruneofa.core.cpu import CpuInfo
from pruneofa.core.errors import InputError
from pruneofa.core.inference import Encoder, Pipeline, Stats
from pruneofa.core.runtime import OPENVINO_TOKENIZER_XML
from pruneofa.deploy.config import LoadConfig
from pruneofa.deploy.opening import open_folder

logger = logging.getLogger("pruneofa.deploy")


def load_config(**options: Any) -> LoadConfig:
    """:class:`LoadConfig` from ``deploy.load``'s keywords; a bad one is a one-line InputError naming it."""
    from pydantic import ValidationError

    try:
        return LoadConfig(**options)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise InputError(
                f"unknown option {where}; load takes {', '.join(LoadConfig.model_fields)}"
            ) from None
        message = first["msg"].removeprefix("Value error, ")
        raise InputError(f"invalid {where}: {message}" if where else message) from None


def load(
    folder: str | Path,
    runtime: str | None = None,
    *,
    config: LoadConfig | None = None,
    cpu: CpuInfo | None = None,
    **options: Any,
) -> Pipeline:
    """Load an exported (or calibrated) folder as a pipeline for its task.

    Options are :class:`~pruneofa.deploy.config.LoadConfig`'s fields, as a ``config`` or as keywords:
    ``runtime`` ``openvino`` or ``onnxruntime`` (default: OpenVINO for an IR folder, ONNX Runtime for an
    ONNX one); ``task`` another task of the same model (``zero-shot-classification`` for an NLI export);
    ``hint``/``threads``/``streams`` override the compile settings chosen for this CPU
    (:func:`deploy.settings.choose_settings`); ``precision`` ``f32`` (default) or ``bf16`` (OpenVINO's bf16
    inference, CPUs with native bf16 only); ``max_length`` lowers the truncation length;
    ``sparse_kernels`` (``auto``, ``on``, ``off``): pruneofa's sparse kernels for OpenVINO
    (:mod:`pruneofa.deploy.sparse_kernels`); ``pipeline.sparse_report`` says which layers ran sparse.
    ``cpu`` replaces the detected CPU (tests).
    """
    if config is None:
        config = load_config(runtime=runtime, **options)
    elif runtime is not None or options:
        config = load_config(**(config.model_dump() | options | ({"runtime": runtime} if runtime else {})))
    opened = open_folder(folder, config, cpu=cpu)
    tokenizer = _tokenizer(opened.folder)
    limit = opened.max_length if config.max_length is None else min(opened.max_length, config.max_length)
    ov_tokenizer = None
    if (
        config.use_openvino_tokenizer
        and opened.task.openvino_tokenizer
        and (opened.folder / OPENVINO_TOKENIZER_XML).is_file()
    ):
        ov_tokenizer = _compile_ov_tokenizer(opened.folder / OPENVINO_TOKENIZER_XML)
    stats = Stats()
    encoder = Encoder(tokenizer, limit, ov_tokenizer, stats)
    if opened.settings is not None and opened.settings.sparse.enabled:
        opened.verify_sparse(encoder.encode(["sparse kernels check"]))
    return opened.task.pipeline(
        folder=opened.folder,
        task=opened.task,
        runtime=opened.runtime,
        settings=opened.settings,
        engine=opened.engine,
        encoder=encoder,
        config=opened.config,
        manifest=opened.manifest,
        batch_size=config.batch_size,
        stats=stats,
        kernels=opened.kernels,
    )


def _tokenizer(folder: Path) -> Any:
    try:
        return modelio.load_tokenizer(modelio.folder_source(folder))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{folder} lacks a usable tokenizer ({type(err).__name__}); export the model with its tokenizer files"
        ) from err


def _compile_ov_tokenizer(path: Path) -> Any:
    """The folder's OpenVINO tokenizer model compiled for CPU; ``None`` (HF tokenizer used) where it fails."""
    try:
        import openvino as ov
        import openvino_tokenizers  # noqa: F401  (registers the tokenizer operations)

        return ov.Core().compile_model(str(path), "CPU")
    except Exception as err:  # an extension/version mismatch: fall back, and say so
        logger.warning("cannot compile %s (%s); using the Hugging Face tokenizer", path, err)
        return None
