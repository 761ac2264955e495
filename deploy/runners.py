"""Open a model for inference, whatever it is: an exported folder (OpenVINO IR or ONNX) or a PyTorch
Hugging Face folder / hub id. Every runner takes a numpy feed and returns the task's outputs, so
validation and benchmarking compare any two of them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core import modelio
from pruneofa.core.choices import DEFAULT_PRECISION, KernelMode, Precision
from pruneofa.core.errors import InputError
from pruneofa.core.qatfolder import is_qat_folder, load_qat_model
from pruneofa.core.runtime import (
    TorchRunner,
    exported_file,
    model_input_names,
    model_inputs,
)
from pruneofa.core.support import ExportTask
from pruneofa.deploy.config import OpenConfig
from pruneofa.deploy.opening import open_folder
from pruneofa.exporter import graph


@dataclass
class Runner:
    """A callable model: ``runner(feed) -> [output arrays]`` in ``task.outputs`` order."""

    label: str
    kind: str  # "openvino", "onnx" or "pytorch"
    location: str
    input_names: list[str]
    task: ExportTask
    call: Any
    tokenizer_source: str
    max_length: int  # longest input its position embeddings allow
    sparse_kernels: str = "not applicable"  # what pruneofa's sparse kernels did (exported OpenVINO models)
    config: Any = None  # the transformers config (its labels, for evaluation hooks that read them)

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.call(model_inputs(feed, self.input_names))


def open_model(
    location: str,
    export_task: str | None = None,
    *,
    sparse_kernels: KernelMode = "auto",
    precision: Precision = DEFAULT_PRECISION,
) -> Runner:
    """An exported folder runs in its runtime (an IR with pruneofa's sparse kernels per ``sparse_kernels``
    and OpenVINO's inference at ``precision``, as it will in deployment); anything else is loaded with
    transformers (FP32)."""
    path = Path(location).expanduser()
    found = exported_file(path) if path.is_dir() else None
    if found is not None:
        kind, model_file = found
        options = OpenConfig(task=export_task, sparse_kernels=sparse_kernels, precision=precision)
        opened = open_folder(path, options, tuned=False)
        weights = (
            opened.manifest.export.weight_format.upper()
            if opened.manifest and opened.manifest.export
            else "exported"
        )
        return Runner(
            label=f"{kind} {weights} ({path.name})",
            kind=kind,
            location=str(opened.folder),
            input_names=model_input_names(model_file),
            task=opened.export_task,
            call=opened.engine,
            tokenizer_source=str(path),
            max_length=opened.max_length,
            sparse_kernels=opened.kernels,
            config=opened.config,
        )
    source = modelio.resolve_model_source(location)
    config = modelio.load_config(source)
    spec = modelio.architecture_spec(config)
    task = modelio.resolve_task(config, export_task)
    folder = source.path  # None for a hub id
    qat = folder is not None and is_qat_folder(folder)
    model = load_qat_model(folder) if folder is not None and qat else modelio.load_model(source, task)
    return Runner(
        label=f"PyTorch {'QAT, fake-quantized' if qat else 'FP32'} ({source.display_name})",
        kind="pytorch",
        location=source.location,
        input_names=graph.input_names(spec),
        task=task,
        call=TorchRunner(model, task.outputs),
        tokenizer_source=source.location,
        max_length=graph.max_sequence_length(config),
        config=config,
    )


def check_same_task(candidate: Runner, reference: Runner) -> None:
    if candidate.task.name != reference.task.name:
        raise InputError(
            f"candidate is a {candidate.task.name} model but the reference is {reference.task.name}; "
            "compare models of the same task"
        )
