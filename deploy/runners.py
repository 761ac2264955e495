"""Open a model for inference, whatever it is: an exported folder (OpenVINO IR or ONNX) or a PyTorch
Hugging Face folder / hub id. Every runner takes a numpy feed and returns the task's outputs, so
validation and benchmarking compare any two of them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core import modelio
from pruneofa.core.cpu import detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import read_manifest
from pruneofa.core.qatfolder import is_qat_folder, load_qat_model
from pruneofa.core.runtime import (
    Engine,
    TorchRunner,
    exported_file,
    model_input_names,
    model_inputs,
    runtime_of,
)
from pruneofa.core.support import EXPORT_TASKS, ExportTask
from pruneofa.deploy.sparse_kernels import effective_mode, preparer, summary
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

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.call(model_inputs(feed, self.input_names))


def open_model(location: str, export_task: str | None = None, *, sparse_kernels: str = "auto") -> Runner:
    """An exported folder runs in its runtime (an IR with pruneofa's sparse kernels per ``sparse_kernels``,
    as it will in deployment); anything else is loaded with transformers (FP32)."""
    path = Path(location).expanduser()
    found = exported_file(path) if path.is_dir() else None
    if found is not None:
        kind, model_file = found
        manifest = read_manifest(path)
        recorded = manifest.export.task if manifest and manifest.export else None
        if export_task and recorded and export_task != recorded:
            raise InputError(
                f"{path} holds a {recorded} model, not {export_task}; check --task and the folder"
            )
        task_name = export_task or recorded
        if task_name is None:
            task_name = modelio.resolve_task(
                modelio.load_config(modelio.ModelSource(str(path), True, path.name)), None
            ).name
        task = EXPORT_TASKS[task_name]
        config = modelio.load_config(modelio.ModelSource(str(path), True, path.name))
        weights = manifest.export.weight_format.upper() if manifest and manifest.export else "exported"
        mode, why = effective_mode(sparse_kernels, runtime_of(kind), amx_sparse=False)
        engine = Engine(
            model_file,
            runtime_of(kind),
            task.outputs,
            ov_config={"INFERENCE_PRECISION_HINT": "f32"},  # the file's weights, not a bf16 execution
            prepare=preparer(mode, manifest, int8_gemm=detect_cpu().has_int8_dot),
        )
        return Runner(
            label=f"{kind} {weights} ({path.name})",
            kind=kind,
            location=str(path.resolve()),
            input_names=model_input_names(model_file),
            task=task,
            call=engine,
            tokenizer_source=str(path),
            max_length=graph.max_sequence_length(config),
            sparse_kernels=summary(engine.prepared, why),
        )
    source = modelio.resolve_model_source(location)
    config = modelio.load_config(source)
    spec = modelio.architecture_spec(config)
    task = modelio.resolve_task(config, export_task)
    qat = source.local and is_qat_folder(source.path)
    model = load_qat_model(source.path) if qat else modelio.load_model(source, task)
    return Runner(
        label=f"PyTorch {'QAT, fake-quantized' if qat else 'FP32'} ({source.display_name})",
        kind="pytorch",
        location=source.location,
        input_names=graph.input_names(spec),
        task=task,
        call=TorchRunner(model, task.outputs),
        tokenizer_source=source.location,
        max_length=graph.max_sequence_length(config),
    )


def check_same_task(candidate: Runner, reference: Runner) -> None:
    if candidate.task.name != reference.task.name:
        raise InputError(
            f"candidate is a {candidate.task.name} model but the reference is {reference.task.name}; "
            "compare models of the same task"
        )
