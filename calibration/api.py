"""``pruneofa calibrate`` as a Python function: FP32 export folder → INT8 folder, checked.

The INT8 folder is built in a temporary folder and moved into place only when the INT8 weights keep
every FP32 zero, the INT8 model agrees with the FP32 export by the measure that fits its task
(:mod:`pruneofa.core.fidelity`: labels, answer spans, embedding cosine and neighbours, top-k tokens),
and, with ``--max-drop``, the drop measured after NNCF's accuracy control is within the limit; so a
folder that exists was checked.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.calibration.backends import CalibrationBackend, backend_for
from pruneofa.calibration.config import CalibrateConfig
from pruneofa.calibration.dataset import calibration_feeds, evaluation_items
from pruneofa.calibration.sparse_ir import SPARSE_IR_FILES, has_sparse_ir, write_int8_sparse_ir
from pruneofa.calibration.sparsity import account_int8_sparsity
from pruneofa.core import modelio, report
from pruneofa.core.cpu import detect_cpu
from pruneofa.core.errors import CheckFailed, InputError
from pruneofa.core.evaluation import Encoded, Forward, evaluate_encoded
from pruneofa.core.fidelity import parity_options
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    AccuracyControl,
    CalibrationInfo,
    ExportInfo,
    Manifest,
    SourceInfo,
    SparsityReport,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.core.metrics import primary
from pruneofa.core.progress import Progress
from pruneofa.core.runtime import MODEL_FILES, exact_engine
from pruneofa.core.support import EXPORT_TASKS
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.exporter import graph, parity
from pruneofa.exporter.int8_weights import float_matmuls


@dataclass
class CalibrationResult:
    output: Path
    manifest: Manifest


def _read_export(folder: Path) -> tuple[Manifest, ExportInfo, SparsityReport]:
    """The FP32 export's manifest, with its export and sparsity records (both required)."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give a folder written by 'pruneofa export'")
    manifest = read_manifest(folder)
    if manifest is None or manifest.export is None:
        raise InputError(
            f"{folder} has no export manifest (pruneofa.json); export the model first with 'pruneofa export'"
        )
    if manifest.calibration is not None or manifest.export.weight_format == "int8":
        raise InputError(f"{folder} is already INT8; calibrate the FP32 export it came from")
    missing = [name for name in MODEL_FILES[manifest.export.target] if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{folder} lacks {', '.join(missing)}; re-export the model")
    if manifest.sparsity is None:
        raise InputError(f"{folder} has no sparsity record in pruneofa.json; re-export the model")
    return manifest, manifest.export, manifest.sparsity


def _check_task(
    task: TaskSpec | None, export_task: str, config: CalibrateConfig, backend: CalibrationBackend
) -> None:
    if task is not None and task.export_task != export_task and export_task != "feature-extraction":
        raise InputError(
            f"task {task.name} needs a {task.export_task} model, but this folder was exported for {export_task}"
        )
    backend.check_options(config)
    if task is None:
        return  # no data: only ONNX dynamic quantization gets here, and --max-drop needs OpenVINO
    if config.max_drop is not None and task.kind not in ("classification", "regression"):
        raise InputError(
            f"--max-drop supports GLUE tasks; for {task.name}, calibrate and then run 'pruneofa validate'"
        )


def calibrate_model(
    exported: str | Path, config: CalibrateConfig, *, command: list[str] | None = None, quiet: bool = False
) -> CalibrationResult:
    """Quantize an FP32 export folder to INT8; raises InputError/CheckFailed with nothing written.

    The backend names the methods to try in turn (``--method auto`` on ONNX: static QDQ, then dynamic
    quantization where static fails parity); the first that passes parity is kept, and the last one is
    reported when none does."""

    started = time.perf_counter()
    folder = Path(exported).expanduser().resolve()
    fp32_manifest, fp32_export, fp32_sparsity = _read_export(folder)
    target = fp32_export.target
    backend = backend_for(target)
    task = get_task(config.task) if config.task is not None else None
    _check_task(task, fp32_export.task, config, backend)
    output = config.output or folder.with_name(folder.name + "-int8")
    inputs = [folder, config.data, config.eval_data]
    check_output_dir(output, overwrite=config.overwrite, inputs=inputs)
    say = Progress(quiet).say

    tokenizer = modelio.load_tokenizer(modelio.folder_source(folder))
    hf_config = modelio.load_config(modelio.folder_source(folder))
    input_names = fp32_export.inputs
    max_length = graph.max_sequence_length(hf_config)
    feeds: list[dict[str, np.ndarray]] = []
    if config.reads_data and task is not None and config.data is not None:
        feeds = calibration_feeds(
            task,
            config.data,
            tokenizer,
            input_names,
            samples=config.samples,
            seed=config.seed,
            split=config.split,
            model_max_length=max_length,
        )
    evaluation = None
    if config.max_drop is not None and config.eval_data is not None and task is not None:
        evaluation = evaluation_items(
            task,
            config.eval_data,
            tokenizer,
            input_names,
            limit=config.eval_limit,
            model_max_length=max_length,
        )
    cpu = detect_cpu()
    fix_setting, fix = backend.saturation_fix(config.overflow_fix, cpu.int8_saturation_risk)
    say(f"{backend.describe(config, len(feeds))}; {fix.description}")

    fp32_file = folder / MODEL_FILES[target][0]
    export_task = EXPORT_TASKS[fp32_export.task]
    batches = parity.build_parity_batches(
        tokenizer,
        export_task,
        input_names,
        samples=config.parity_samples,
        max_length=max_length,
        vocab_size=int(hf_config.vocab_size),
    )
    with (
        tempfile.TemporaryDirectory(prefix="pruneofa-calibrate-") as work,
        atomic_output_dir(output, overwrite=config.overwrite, inputs=inputs) as staging,
    ):
        # The FP32 sparse IR is not this folder's model: it is written again from the INT8 IR below.
        not_copied = MODEL_FILES[target] + ("pruneofa.json",) + SPARSE_IR_FILES
        for item in folder.iterdir():
            if item.is_file() and item.name not in not_copied:
                shutil.copy2(item, staging / item.name)
        int8_file = staging / MODEL_FILES[target][0]
        control_log = _ControlLog()
        validation = None
        if evaluation is not None and config.max_drop is not None and task is not None:
            items, examples = evaluation
            validation = (
                items,
                _validation_fn(task, items, examples, control_log),
                # NNCF compares fractions: 1.0 - 0.95 > 0.05 in floating point, so give it the same
                # tolerance as the check below, or a drop of exactly --max-drop is never accepted.
                config.max_drop / 100.0 + _DROP_TOLERANCE / 100.0,
            )
        attempts = backend.attempts(config)
        tried: list[str] = []
        for index, attempt in enumerate(attempts):
            quant_started = time.perf_counter()
            backend.quantize(
                fp32_file,
                int8_file,
                backend.prepare_feeds(feeds, attempt, tokenizer.pad_token_id or 0),
                attempt,
                saturation_setting=fix_setting,
                validation=validation,
                work_dir=Path(work),
                progress=not quiet,
            )
            quant_time = time.perf_counter() - quant_started
            say(f"quantized in {quant_time:.1f} s; checking sparsity and parity against the FP32 export")
            sparsity_report, problems, kept = account_int8_sparsity(
                fp32_sparsity, target, fp32_file, int8_file
            )
            accuracy, control_failure = None, None
            if evaluation is not None and task is not None:
                items, examples = evaluation
                accuracy, control_failure = _check_accuracy_control(
                    task,
                    config,
                    items,
                    examples,
                    fp32_file,
                    int8_file,
                    export_task.outputs,
                    kept,
                    control_log,
                )
            parity_report = parity.compare(
                exact_engine(fp32_file, export_task.outputs),
                exact_engine(int8_file, export_task.outputs),
                batches,
                export_task,
                atol=config.atol,
                options=parity_options(config),
                reference_label=f"the FP32 {target} export",
            )
            if parity_report.passed or index == len(attempts) - 1:
                break
            what = f"{backend.recorded_method(attempt).method} ({attempt.method})"
            reason = parity.failure_reason(parity_report)
            tried.append(f"{what}: parity failed, {reason}")
            say(
                f"{what} failed parity ({reason}); switching to {attempts[index + 1].method} quantization "
                "(--method auto; pass --method to hold one method)"
            )
        sparse_ir_info = None
        if target == "openvino" and has_sparse_ir(folder, fp32_manifest):
            say("writing the INT8 sparse IR (pruneofa SparseLinear op, INT8 compute) and checking it")
            sparse_ir_info, sparse_problems = write_int8_sparse_ir(
                fp32_manifest, int8_file, staging, batches, export_task.outputs
            )
            problems = [*problems, *sparse_problems]
        files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
        recorded = backend.recorded_method(attempt)
        fp32_bytes = sum((folder / name).stat().st_size for name in MODEL_FILES[target])
        int8_bytes = sum(files[name] for name in MODEL_FILES[target])
        reads_data = attempt.reads_data
        manifest = Manifest(
            stage="calibrate",
            command=command
            or [
                "pruneofa.calibration.calibrate_model",
                str(folder),
                config.model_dump_json(exclude_defaults=True),
            ],
            created_at=now_utc(),
            versions=library_versions(),
            source=SourceInfo(
                model=str(folder),
                model_type=fp32_manifest.source.model_type,
                architecture=fp32_manifest.source.architecture,
                file_sha256=hash_model_files(folder),
            ),
            lineage=fp32_manifest.lineage + [fp32_manifest.as_lineage()],
            export=fp32_export.model_copy(
                update={
                    "weight_format": "int8",
                    "files": files,
                    "sparse_ir": sparse_ir_info,
                    "wall_time_s": round(time.perf_counter() - started, 2),
                }
            ),
            shrink=fp32_manifest.shrink,
            sparsity=sparsity_report,
            parity=parity_report,
            calibration=CalibrationInfo(
                target=target,
                method=recorded.method,
                calibration=recorded.calibration,
                preset=recorded.preset,
                per_channel=recorded.per_channel,
                saturation_fix=fix.description,
                cpu=cpu.summary(),
                samples=len(feeds) if reads_data else 0,
                seed=config.seed if reads_data else None,
                data=config.data if reads_data else None,
                task=task.name if task is not None else None,
                split=config.split if reads_data else None,
                fp32_bytes=fp32_bytes,
                int8_bytes=int8_bytes,
                wall_time_s=round(quant_time, 2),
                accuracy_control=accuracy,
                tried=tried,
            ),
        )
        write_manifest(staging, manifest)
        text = report.describe(str(output), manifest)
        failures = list(problems)
        if control_failure is not None:
            failures.append(control_failure)
        if not parity_report.passed:
            failed_first = f" (after {'; '.join(tried)})" if tried else ""
            failures.append(
                parity.failure_reason(parity_report) + failed_first + backend.parity_hint(attempt)
            )
        if failures:
            print(report.rejected_checks(f"INT8 {target} model", manifest), file=sys.stderr)
            raise CheckFailed(f"INT8 {target} model rejected, nothing written: " + "; ".join(failures))
    if not quiet:
        print(text, flush=True)
    return CalibrationResult(output, manifest)


def _evaluate(runner: Forward, task: TaskSpec, items: list[dict], examples: list) -> float:
    """The primary metric (points) of the model ``runner`` runs, on the feeds ``items`` made from the
    labelled ``examples`` (one each)."""
    return primary(task, evaluate_encoded(runner, task, examples, Encoded(items)).metrics)


_DROP_TOLERANCE = 1e-6  # points: metrics are shares of a few hundred examples, far coarser than this


@dataclass
class _ControlLog:
    """What NNCF's accuracy control measured through our validation function, call by call: (items
    validated, metric in points). Its first two calls on the whole set are the FP32 model and the INT8
    model before any layer was reverted; no call at all means accuracy control never ran."""

    calls: list[tuple[int, float]] = field(default_factory=list)

    def whole_set(self, size: int) -> list[float]:
        return [metric for count, metric in self.calls if count == size]


def _validation_fn(task: TaskSpec, items: list[dict], examples: list, log: _ControlLog | None = None):
    """NNCF's validation function: compiled model and items → the primary metric as a fraction.

    NNCF may pass a subset of the items (when ranking layers), so examples are found by item identity
    (NNCF hands the same objects back when the dataset has no transform function)."""
    example_of = {id(item): example for item, example in zip(items, examples, strict=True)}

    def validate(compiled_model: Any, subset) -> float:
        subset = list(subset)

        def forward(feed: dict) -> list[np.ndarray]:
            return [np.asarray(compiled_model(feed)[0])]

        scored = [example_of[id(item)] for item in subset]
        metric = primary(task, evaluate_encoded(forward, task, scored, Encoded(subset)).metrics)
        if log is not None:
            log.calls.append((len(scored), metric))
        return metric / 100.0

    return validate


def _check_accuracy_control(
    task: TaskSpec,
    config: CalibrateConfig,
    items: list[dict],
    examples: list,
    fp32_file: Path,
    int8_file: Path,
    outputs: tuple[str, ...],
    kept_weights: list[str],
    log: _ControlLog,
) -> tuple[AccuracyControl, str | None]:
    """Measure the drop after NNCF's accuracy control ourselves (both files, the same labelled items) and
    hold it to ``--max-drop``; returns the manifest block and the failure, if any."""
    max_drop = config.max_drop
    if max_drop is None:
        raise ValueError("accuracy control is checked only with --max-drop")
    fp32_metric = _evaluate(exact_engine(fp32_file, outputs), task, items, examples)
    int8_metric = _evaluate(exact_engine(int8_file, outputs), task, items, examples)
    kept = kept_weights + [f"{name} (attention, activations)" for name in float_matmuls(int8_file)]
    whole = log.whole_set(len(items))
    drop = fp32_metric - int8_metric
    passed = bool(whole) and drop <= max_drop + _DROP_TOLERANCE
    control = AccuracyControl(
        metric=task.primary_metric,
        max_drop=max_drop,
        fp32_metric=fp32_metric,
        int8_metric=int8_metric,
        kept_in_float=kept,
        ptq_metric=whole[1] if len(whole) > 1 else None,
        passed=passed,
    )
    if not whole:
        return control, "NNCF's accuracy control never evaluated the model, so --max-drop was not enforced"
    if not passed:
        return control, (
            f"{task.primary_metric} dropped by {drop:.2f} points (FP32 {fp32_metric:.2f} → INT8 "
            f"{int8_metric:.2f}) > --max-drop {max_drop:g} after accuracy control kept "
            f"{len(kept)} layers in float; raise --max-drop, calibrate on more --samples, or train with "
            "'pruneofa qat'"
        )
    return control, None
