"""``pruneofa export`` as a Python function: load → (shrink) → ONNX/IR → account → parity → manifest.

Every target is built in a temporary folder and moved into place only after its sparsity accounting
and output parity have passed, so a folder that exists is a folder that was checked.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pruneofa.core import modelio, report
from pruneofa.core.errors import CheckFailed, InputError
from pruneofa.core.fidelity import parity_options
from pruneofa.core.fsutil import atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    ExportInfo,
    Manifest,
    SourceInfo,
    WeightFormat,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.core.progress import Progress
from pruneofa.core.qatfolder import is_qat_folder, load_qat_model
from pruneofa.core.runtime import ONNX_FILE, OPENVINO_XML, TorchRunner, exact_engine
from pruneofa.core.support import ArchitectureSpec, ExportTask
from pruneofa.exporter import graph, parity, qat_export, sparsity
from pruneofa.exporter.config import DEFAULT_ATOL, ExportConfig
from pruneofa.exporter.shrink import shrink_model


@dataclass
class ExportResult:
    target: str
    output: Path
    manifest: Manifest


def _output_dirs(config: ExportConfig, display_name: str) -> dict[str, Path]:
    if config.output is None:
        return {t: Path("exports") / f"{display_name}-{t}" for t in config.targets}
    if len(config.targets) == 1:
        return {config.targets[0]: config.output}
    return {t: config.output / t for t in config.targets}


def read_export_input(
    source: modelio.ModelSource, config: ExportConfig
) -> tuple[Manifest | None, Any, ArchitectureSpec, ExportTask, Any]:
    """What export reads from MODEL before it builds anything: its manifest, config (sizes checked),
    family, task and tokenizer (files checked). Every problem is an :class:`InputError`, whatever the
    files hold (tests/core/test_model_folder_fuzz.py runs this on mutated folders)."""
    parent_manifest = read_manifest(source.path) if source.path is not None else None
    hf_config = modelio.load_config(source)
    spec = (
        modelio.layout_spec(hf_config, "export --shrink")
        if config.shrink
        else modelio.architecture_spec(hf_config)
    )
    task = modelio.resolve_task(hf_config, config.task)
    tokenizer = modelio.load_tokenizer(source)
    return parent_manifest, hf_config, spec, task, tokenizer


def export_model(
    model: str | None, config: ExportConfig, *, command: list[str] | None = None, quiet: bool = False
) -> list[ExportResult]:
    """Export MODEL (folder, hub id, or ``None`` for the default) to each target in ``config``.

    Raises :class:`InputError` before anything is written when the input cannot work, and
    :class:`CheckFailed` (nothing moved into place) when sparsity accounting or parity fails.
    """
    started = time.perf_counter()
    step = Progress(quiet)
    source = modelio.resolve_model_source(model)
    outputs = _output_dirs(config, source.display_name)
    inputs = [source.path]
    for out in outputs.values():
        check_output_dir(out, overwrite=config.overwrite, inputs=inputs)
    step(f"loading {source.location}")
    parent_manifest, hf_config, spec, task, tokenizer = read_export_input(source, config)
    folder = source.path  # None for a hub id
    is_qat = folder is not None and is_qat_folder(folder)
    if folder is not None and is_qat:
        _check_qat_options(config)
        step("QAT model: exporting through TorchScript tracing with INT8 weights")
        reference = load_qat_model(folder)
    else:
        reference = modelio.load_model(source, task)
    # A QAT folder is traced by qat_export with the family's full input set; a plain one with its own.
    names = graph.input_names(spec, None if is_qat else hf_config)

    exported_model = reference
    shrink_report = None
    if config.shrink:
        exported_model = copy.deepcopy(reference)
        shrink_report = shrink_model(exported_model, spec)
        step(f"shrunk: {shrink_report.params_before:,} → {shrink_report.params_after:,} parameters")
        if shrink_report.params_after == shrink_report.params_before:
            print(
                "pruneofa export: warning: --shrink removed nothing (no attention head or FFN neuron of this "
                "model is all zero: it is dense or unstructured-sparse); the export is the same as without it",
                file=sys.stderr,
            )

    batches = parity.build_parity_batches(
        tokenizer,
        task,
        names,
        samples=config.parity_samples,
        max_length=graph.max_sequence_length(hf_config),
        vocab_size=int(hf_config.vocab_size),
    )
    sample_inputs = {k: torch.from_numpy(v) for k, v in batches[0].items()}
    weights = sparsity.torch_weights(exported_model, sample_inputs, task.outputs)
    if is_qat:
        weights = qat_export.qat_weights(weights)
    source_info = SourceInfo(
        model=source.location,
        model_type=spec.model_type,
        architecture=(getattr(hf_config, "architectures", None) or [None])[0],
        revision=getattr(hf_config, "_commit_hash", None) if not source.local else None,
        file_sha256=hash_model_files(folder) if folder is not None else {},
    )
    lineage = (parent_manifest.lineage + [parent_manifest.as_lineage()]) if parent_manifest else []

    results, reports = [], []
    # Every target is staged first; the folders move into place together, only when all passed.
    with tempfile.TemporaryDirectory(prefix="pruneofa-export-") as work, contextlib.ExitStack() as commit_all:
        onnx_path = Path(work) / ONNX_FILE
        if not is_qat:
            step(f"exporting {task.name} graph to ONNX (opset {config.opset}, dynamic batch and sequence)")
            graph.export_onnx(exported_model, spec, task, onnx_path, opset=config.opset)
        shared_time = time.perf_counter() - started
        for target in config.targets:
            target_started = time.perf_counter()
            staging = commit_all.enter_context(
                atomic_output_dir(outputs[target], overwrite=config.overwrite, inputs=inputs)
            )
            if is_qat:
                model_file, weight_format, converted, note = _write_qat_target(
                    target, reference, spec, staging, config, tokenizer, task, step
                )
            else:
                model_file, weight_format, converted, note = _write_target(
                    target, onnx_path, staging, config, tokenizer, task, step
                )
            hf_config.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            step(f"{target}: accounting sparsity of {len(weights)} weight matrices")
            if is_qat:
                stored = qat_export.stored_int8_weights(target, model_file)
                sparsity_report, problems = qat_export.account_int8_by_name(weights, stored)
            else:
                exported = (
                    sparsity.onnx_constants(model_file)
                    if target == "onnx"
                    else sparsity.openvino_constants(model_file)
                )
                sparsity_report, problems = sparsity.account_sparsity(weights, exported, weight_format)
            step(f"{target}: checking output parity on {config.parity_samples} inputs")
            parity_report = parity.compare(
                TorchRunner(reference, task.outputs),
                exact_engine(model_file, task.outputs),
                batches,
                task,
                atol=config.atol if config.atol is not None else DEFAULT_ATOL.get(weight_format),
                options=parity_options(config),
                reference_label="PyTorch QAT (fake-quantized)"
                if is_qat
                else "PyTorch FP32" + (" (unshrunk)" if config.shrink else ""),
            )
            sparse_ir_info = None
            if config.sparse_ir and target == "openvino":
                step("openvino: writing the sparse IR (pruneofa SparseLinear op) and checking it")
                from pruneofa.exporter.sparse_ir import write_sparse_ir

                sparse_ir_info, sparse_problems = write_sparse_ir(
                    model_file,
                    staging,
                    batches,
                    task.outputs,
                    mode=config.sparse_kernels,
                    # a QAT export's IR is INT8: its sparse IR keeps the INT8 weights and computes in INT8
                    precision="int8" if weight_format == "int8" else "fp32",
                )
                problems = [*problems, *sparse_problems]
            manifest = Manifest(
                stage="export",
                command=command
                or [
                    "pruneofa.exporter.export_model",
                    str(model),
                    config.model_dump_json(exclude_defaults=True),
                ],
                created_at=now_utc(),
                versions=library_versions(),
                source=source_info,
                lineage=lineage,
                shrink=shrink_report,
                sparsity=sparsity_report,
                parity=parity_report,
                export=ExportInfo(
                    target=target,
                    task=task.name,
                    opset=config.opset,
                    weight_format=weight_format,
                    inputs=names,
                    outputs=list(task.outputs),
                    files={p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()},
                    tokenizer_converted=converted,
                    tokenizer_note=note,
                    wall_time_s=round(shared_time + time.perf_counter() - target_started, 2),
                    sparse_ir=sparse_ir_info,
                ),
            )
            write_manifest(staging, manifest)
            text = report.export_summary(str(outputs[target]), manifest)
            failures = list(problems)
            if not parity_report.passed:
                failures.append(parity.failure_reason(parity_report))
            if failures:
                print(
                    report.rejected_checks(f"{target} export of {source.display_name}", manifest),
                    file=sys.stderr,
                )
                raise CheckFailed(
                    f"{target} export of {source.display_name} rejected, nothing written: "
                    + "; ".join(failures)
                )
            reports.append(text)
            results.append(ExportResult(target, outputs[target], manifest))
    if not quiet:
        print("\n".join(reports), flush=True)
    step("done: " + ", ".join(f"{r.target} → {r.output}" for r in results))
    return results


def _write_target(
    target: str,
    onnx_path: Path,
    staging: Path,
    config: ExportConfig,
    tokenizer: Any,
    task: Any,
    step: Progress,
) -> tuple[Path, WeightFormat, bool, str | None]:
    """Write the target's model file(s) into ``staging``; returns file, weight format, tokenizer status."""
    if target == "onnx":
        model_file = staging / ONNX_FILE
        shutil.copyfile(onnx_path, model_file)
        return model_file, "fp32", False, "ONNX folders use the Hugging Face tokenizer files"
    model_file = staging / OPENVINO_XML
    step(f"converting to OpenVINO IR ({config.weight_format} weights)")
    graph.convert_to_openvino(onnx_path, model_file, weight_format=config.weight_format)
    if not config.convert_tokenizer:
        return model_file, config.weight_format, False, "disabled with --no-tokenizer"
    converted, note = graph.convert_tokenizer(
        tokenizer, staging, pair_input=task.name == "question-answering"
    )
    return model_file, config.weight_format, converted, note


def _check_qat_options(config: ExportConfig) -> None:
    if config.shrink:
        raise InputError("--shrink does not apply to a QAT model (shrink the sparse model before QAT)")
    if config.weight_format != "fp32":
        raise InputError("a QAT model exports with INT8 weights; drop --weight-format")


def _write_qat_target(
    target: str,
    model: Any,
    spec: Any,
    staging: Path,
    config: ExportConfig,
    tokenizer: Any,
    task: Any,
    step: Progress,
) -> tuple[Path, WeightFormat, bool, str | None]:
    """Trace the QAT model into ``staging`` (INT8 weights); returns file, weight format, tokenizer status."""
    if target == "onnx":
        model_file = staging / ONNX_FILE
        step("onnx: stripping to PyTorch fake quantizers and tracing to QDQ ONNX, INT8 weight initializers")
        qat_export.export_onnx(model, spec, task, model_file, opset=config.opset)
        return model_file, "int8", False, "ONNX folders use the Hugging Face tokenizer files"
    model_file = staging / OPENVINO_XML
    step("openvino: tracing the QAT model to IR (FakeQuantize, INT8 weight constants)")
    qat_export.export_openvino(model, spec, task, model_file)
    if not config.convert_tokenizer:
        return model_file, "int8", False, "disabled with --no-tokenizer"
    converted, note = graph.convert_tokenizer(
        tokenizer, staging, pair_input=task.name == "question-answering"
    )
    return model_file, "int8", converted, note
