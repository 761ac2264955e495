"""The one way to open an exported (or calibrated) folder: read its manifest and config, resolve its task,
pick the runtime, the compile settings and the sparse-kernel mode, and build the
:class:`~pruneofa.core.runtime.Engine`. ``deploy.load`` wraps the result in the task's pipeline; serve,
validate and benchmark use it directly.

Two ways to compile, one function: ``tuned=True`` (deployment: ``load``, serve, benchmark) applies the
settings chosen for this CPU (:func:`pruneofa.deploy.settings.choose_settings`: hint, streams, threads,
OpenVINO's AMX sparse decompression where it wins); ``tuned=False`` (validation) runs the file's weights
at f32 with the runtime's own threading, as export and calibration measured them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pruneofa.core import modelio
from pruneofa.core.cpu import CpuInfo, detect_cpu
from pruneofa.core.errors import InputError
from pruneofa.core.inference import INFERENCE_TASKS, InferenceTask, get_inference_task
from pruneofa.core.manifest import Manifest, read_manifest
from pruneofa.core.runtime import Engine, model_file_for, resolve_runtime
from pruneofa.core.support import EXPORT_TASKS, ExportTask
from pruneofa.deploy import sparse_kernels as kernel_policy
from pruneofa.deploy.config import OpenConfig
from pruneofa.deploy.settings import CompileSettings, check_precision, choose_settings, count_sparse_kernels
from pruneofa.exporter import graph


@dataclass
class OpenedFolder:
    """An exported folder, opened: the engine and everything that describes it."""

    folder: Path
    runtime: str
    model_file: Path
    manifest: Manifest | None
    config: Any  # the transformers config (labels, hidden size, ...)
    task: InferenceTask
    export_task: ExportTask
    engine: Engine
    settings: CompileSettings | None  # None when not tuned (the runtime's own threading, f32)
    kernels: str  # what pruneofa's sparse kernels did, in one line

    @property
    def max_length(self) -> int:
        """The longest input the model's position embeddings allow."""
        return graph.max_sequence_length(self.config)

    @property
    def kernel_report(self) -> Any:
        """:class:`pruneofa.kernels.SparseReport` of the load-time rewrite, or ``None`` where it did not apply."""
        return self.engine.prepared.report if self.engine.prepared is not None else None

    def verify_sparse(self, feed: dict[str, Any]) -> None:
        """Where OpenVINO's AMX sparse decompression was asked for, profile one ``feed`` and record how many
        fully-connected layers actually ran sparse (the settings' description reports it)."""
        if self.settings is not None and self.settings.sparse.enabled:
            sparse_layers, fc_layers = count_sparse_kernels(self.engine.profile(feed))
            sparse = self.settings.sparse.with_verification(sparse_layers, fc_layers)
            self.settings = replace(self.settings, sparse=sparse)


def _task(path: Path, manifest: Manifest | None, config: Any, requested: str | None) -> InferenceTask:
    """The task to run: ``requested`` (an inference task, which must fit the folder's export task), else
    the export task recorded in the manifest, else the one the config's architecture implies."""
    if manifest is not None and manifest.export is not None:
        recorded = EXPORT_TASKS[manifest.export.task]
    else:
        from pruneofa.core import modelio

        recorded = modelio.resolve_task(config, None)
    if requested is None:
        return INFERENCE_TASKS[recorded.name]
    task = get_inference_task(requested)
    if task.export_task != recorded.name:
        runs = "" if task.name == task.export_task else f" (the model {task.name} runs)"
        raise InputError(
            f"{path} holds a {recorded.name} model, not {task.export_task}{runs}; check --task and the folder"
        )
    return task


def _config(path: Path) -> Any:
    try:
        return modelio.load_config(modelio.folder_source(path))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{path} lacks a usable config.json ({type(err).__name__}); export the model with its config"
        ) from err


def _check_outputs(path: Path, export_task: ExportTask, engine: Engine) -> None:
    """Refuse a model whose outputs are not the task's (a manifest naming question-answering on a
    classification IR would otherwise fail at the first request)."""
    has = engine.output_names
    missing = [name for name in export_task.outputs if name not in has]
    if missing:
        raise InputError(
            f"{path}: the task {export_task.name} needs the outputs {', '.join(export_task.outputs)} but the "
            f"model has {', '.join(sorted(has)) or 'none'}; check the manifest's task or re-export the folder"
        )


def open_folder(
    folder: str | Path,
    options: OpenConfig | None = None,
    *,
    cpu: CpuInfo | None = None,
    tuned: bool = True,
) -> OpenedFolder:
    """Open the exported ``folder`` (see the module docstring for ``tuned``); ``options`` says which
    runtime and task, the compile hint, threads and streams, and the sparse-kernel mode."""
    from pruneofa.core.modelio import refuse_custom_code

    options = options or OpenConfig()
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{path} is not a folder; give a folder written by 'pruneofa export' or 'pruneofa calibrate'"
        )
    refuse_custom_code(path)  # one clear "unsupported" line for a folder that ships its own model code
    runtime = resolve_runtime(path, options.runtime)
    model_file = model_file_for(path, runtime)
    manifest = read_manifest(path)
    config = _config(path)
    task = _task(path, manifest, config, options.task)
    export_task = EXPORT_TASKS[task.export_task]
    cpu = cpu or detect_cpu()
    settings: CompileSettings | None = None
    if tuned:
        settings = choose_settings(
            cpu,
            runtime,
            hint=options.hint,
            weight_format=manifest.export.weight_format if manifest and manifest.export else None,
            sparsity=manifest.sparsity if manifest else None,
            threads=options.threads,
            streams=options.streams,
            sparse_kernels=options.sparse_kernels,
            precision=options.precision,
        )
        mode, why = settings.kernels, settings.kernels_reason
        ov_config = (
            settings.openvino_config(profile=settings.sparse.enabled) if runtime == "openvino" else None
        )
        ort_options = settings.onnxruntime_options() if runtime == "onnxruntime" else None
    else:
        mode, why = kernel_policy.effective_mode(options.sparse_kernels, runtime, amx_sparse=False)
        if runtime == "openvino":
            check_precision(cpu, options.precision)
        # the file's weights at f32 unless bf16 was asked for (validate at the precision it will serve at)
        ov_config = {"INFERENCE_PRECISION_HINT": options.precision}
        ort_options = None
    engine = Engine(
        model_file,
        runtime,
        export_task.outputs,
        ov_config=ov_config,
        ort_options=ort_options,
        prepare=kernel_policy.preparer(
            mode,
            manifest,
            int8_gemm=cpu.has_int8_dot,
            precision_hint=(ov_config or {}).get("INFERENCE_PRECISION_HINT"),
        ),
        static_shapes=kernel_policy.static_shape_limit()
        if runtime == "openvino" and options.static_shapes == "all"
        else None,
    )
    _check_outputs(path, export_task, engine)
    return OpenedFolder(
        folder=path.resolve(),
        runtime=runtime,
        model_file=model_file,
        manifest=manifest,
        config=config,
        task=task,
        export_task=export_task,
        engine=engine,
        settings=settings,
        kernels=kernel_policy.summary(engine.prepared, why),
    )
