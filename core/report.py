"""Plain-text tables for the terminal, made from a manifest: sparsity, parity, shrink, summary."""

from __future__ import annotations

import re
from collections import OrderedDict

from pruneofa.core.manifest import Manifest, ParityReport, ShrinkReport, SparseIRInfo, SparsityReport
from pruneofa.core.runtime import MODEL_FILES

_LAYER = re.compile(r"\.(?:layer|layers)\.(\d+)\.")


def _group(name: str) -> str:
    found = _LAYER.search(name)
    if found:
        return f"layer {int(found.group(1)):>2}"
    for key in ("embeddings", "pooler"):
        if key in name:
            return key
    return "head"


def sparsity_table(report: SparsityReport, *, per_tensor: bool = False) -> str:
    """Per layer (or per weight matrix with ``per_tensor``), plus Linear and overall totals."""
    groups: OrderedDict[str, list[int]] = OrderedDict()
    skipped = []
    for row in report.tensors:
        if row.status != "matched":
            skipped.append(f"{row.name} ({row.status})")
            continue
        g = groups.setdefault(row.name if per_tensor else _group(row.name), [0, 0, 0, 0, 0])
        g[0] += row.numel
        g[1] += row.zeros_before
        g[2] += row.zeros_after or 0  # set on every matched row
        g[3] += row.extra_zeros or 0
        g[4] += row.lost_zeros or 0
    width = max([11] + [len(name) + 1 for name in groups])
    lines = [
        f"Sparsity (weights stored as {report.weight_format}; zeros before export → in the exported constants)",
        f"  {'part':<{width}}{'weights':>12}{'before':>9}{'after':>9}{'extra 0':>10}{'lost 0':>8}",
    ]
    for name, (numel, before, after, extra, lost) in groups.items():
        lines.append(
            f"  {name:<{width}}{numel:>12,}{before / numel:>9.2%}{after / numel:>9.2%}{extra:>10,}{lost:>8,}"
        )
    lines.append(
        f"  {'Linear':<{width}}{report.linear_numel:>12,}{report.linear_sparsity_before:>9.2%}"
        f"{report.linear_sparsity_after:>9.2%}"
    )
    lines.append(
        f"  {'all':<{width}}{report.total_numel:>12,}{report.total_zeros_before / max(report.total_numel, 1):>9.2%}"
        f"{report.total_zeros_after / max(report.total_numel, 1):>9.2%}{report.extra_zeros:>10,}{report.lost_zeros:>8,}"
    )
    if skipped:
        lines.append("  not in the graph: " + ", ".join(skipped))
    verdict = (
        "position-for-position identical" if report.position_exact else "zeros kept, rounding added zeros"
    )
    lines.append(
        f"  → {'PASS' if report.passed else 'FAIL'}: {verdict if report.lost_zeros == 0 else 'zeros were lost'}"
    )
    return "\n".join(lines)


def parity_table(report: ParityReport) -> str:
    if not report.checks:  # a manifest written before parity followed the task
        return _argmax_parity_table(report)
    from pruneofa.core.fidelity import describe, format_value

    argmax_gated = report.task in ("text-classification", "token-classification", "question-answering")
    lines = [
        f"Output parity vs {report.reference} on {report.samples} inputs ({report.task}; atol "
        f"{'not gated' if report.atol is None else format(report.atol, 'g')})",
        f"  {'output':<18}{'max abs':>11}{'mean abs':>11}{'max rel':>11}"
        + (f"{'agreement':>11}" if argmax_gated else ""),
    ]
    for o in report.outputs:
        lines.append(
            f"  {o.name:<18}{o.max_abs_error:>11.2e}{o.mean_abs_error:>11.2e}{o.max_rel_error:>11.2e}"
            + (f"{o.argmax_agreement:>11.2%}" if argmax_gated else "")
        )
    for check in report.checks:
        bound = "reported" if check.bound is None else f"min {check.bound:g} ({check.option})"
        mark = "" if check.passed else "  ← FAIL"
        lines.append(f"  {check.label:<32}{format_value(check):>10}  {bound}{mark}")
    lines.append(f"  → {'PASS' if report.passed else 'FAIL'}: {describe(report.checks)}")
    return "\n".join(lines)


def _argmax_parity_table(report: ParityReport) -> str:
    lines = [
        f"Output parity vs {report.reference} on {report.samples} inputs (atol "
        f"{'not gated' if report.atol is None else format(report.atol, 'g')}, "
        f"min agreement {report.min_agreement:.2%})",
        f"  {'output':<18}{'max abs':>11}{'mean abs':>11}{'max rel':>11}{'agreement':>11}",
    ]
    for o in report.outputs:
        lines.append(
            f"  {o.name:<18}{o.max_abs_error:>11.2e}{o.mean_abs_error:>11.2e}{o.max_rel_error:>11.2e}"
            f"{o.argmax_agreement:>11.2%}"
        )
    lines.append(f"  → {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def shrink_table(report: ShrinkReport) -> str:
    lines = ["Structured shrink (heads and FFN neurons kept per layer)"]
    for row in report.layers:
        lines.append(
            f"  layer {row.layer:>2}: heads {row.heads_before:>3} → {row.heads_after:<3} "
            f"neurons {row.neurons_before:>5} → {row.neurons_after}"
        )
    ratio = report.params_after / max(report.params_before, 1)
    lines.append(f"  parameters {report.params_before:,} → {report.params_after:,} ({ratio:.1%})")
    return "\n".join(lines)


def describe(folder: str, manifest: Manifest, *, per_tensor: bool = False) -> str:
    """``pruneofa info``: provenance first, then whatever checks the manifest records."""
    lines = [
        f"{folder}: written by 'pruneofa {manifest.stage}' at {manifest.created_at}",
        f"  command: {' '.join(manifest.command)}",
        f"  source: {manifest.source.model} ({manifest.source.model_type}"
        + (f", {manifest.source.architecture})" if manifest.source.architecture else ")"),
        "  versions: " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items()),
    ]
    if manifest.lineage:
        # The chain back to the dense model, each stage with the content hash of the folder it read, so
        # a folder can be matched to its parents even after they moved (pruneofa validate checks it).
        lines.append("  lineage (oldest first; sha256 of the folder each stage read):")
        for entry in [*manifest.lineage, manifest.as_lineage()]:
            digest = f" [sha256 {entry.source_sha256[:12]}]" if entry.source_sha256 else ""
            lines.append(f"    {entry.stage:<10} {entry.created_at}  from {entry.source}{digest}")
    for name, value in manifest.metrics.items():
        lines.append(f"  metric {name}: {value:g}")
    if manifest.training is not None:
        lines.append(training_summary(manifest, per_tensor=per_tensor))
    if manifest.qat is not None:
        q = manifest.qat
        lines.append(
            f"QAT: {q.method}, preset {q.preset}, {q.weight_quantizers} weight and "
            f"{q.activation_quantizers} activation quantizers, {q.calibration_samples} calibration samples"
        )
        lines.append(f"  saturation: {q.saturation_fix} on {q.cpu}")
        for label, values in (("FP32 input", q.metric_before_qat), ("PTQ only", q.metric_ptq_only)):
            lines.append(f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    if manifest.calibration is not None:
        lines.append(calibration_summary(manifest))
    if manifest.export is not None:
        lines.append(export_summary(folder, manifest, per_tensor=per_tensor))
    return "\n".join(lines)


def training_summary(manifest: Manifest, *, per_tensor: bool = False) -> str:
    """What a training stage did: inputs, budget, final loss and the sparsity each layer ended at."""
    info = manifest.training
    assert info is not None
    lines = [
        f"Training ({info.kind}): {info.task} on {info.data}"
        + (f", teacher {info.teacher}" if info.teacher else "")
        + (f", recipe {info.recipe}" if info.recipe else ""),
        f"  budget: {info.steps} steps × batch {info.batch_size} × {info.seq_len} tokens, learning rate "
        f"{info.learning_rate:g}, seed {info.seed}; {info.wall_time_s:.0f} s ({info.step_time_s:.2f} s/step)",
    ]
    if info.loss_curve:
        last = info.loss_curve[-1]
        lines.append("  last logged: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    if info.layer_sparsity:
        values = list(info.layer_sparsity.values())
        lines.append(
            f"  sparsity of {len(values)} pruned Linear layers: mean {sum(values) / len(values):.2%}, "
            f"min {min(values):.2%}, max {max(values):.2%}"
        )
        groups: dict[str, list[float]] = OrderedDict()
        for name, value in info.layer_sparsity.items():
            groups.setdefault(name if per_tensor else _group(name), []).append(value)
        for name, group in groups.items():
            lines.append(
                f"    {name:<40} {sum(group) / len(group):7.2%}"
                + ("" if per_tensor else f"  ({len(group)} layers)")
            )
    return "\n".join(lines)


def calibration_summary(manifest: Manifest) -> str:
    info = manifest.calibration
    assert info is not None
    lines = [
        f"INT8 calibration: {info.method}"
        + (f" ({info.calibration})" if info.calibration else "")
        + (f", preset {info.preset}" if info.preset else "")
        + f", per-channel weights {'yes' if info.per_channel else 'no'}",
        (
            f"  data: {info.samples} samples of {info.task} ({info.split}) from {info.data}, seed {info.seed}"
            if info.data is not None
            else "  data: none (dynamic quantization: activations are quantized per input at run time)"
        ),
        *(f"  tried first: {attempt}" for attempt in info.tried),
        f"  saturation: {info.saturation_fix}; CPU {info.cpu}",
        f"  model size {info.fp32_bytes / 1e6:.2f} MB → {info.int8_bytes / 1e6:.2f} MB "
        f"({info.fp32_bytes / max(info.int8_bytes, 1):.2f}x smaller); quantization took {info.wall_time_s:.1f} s",
    ]
    control = info.accuracy_control
    if control is not None:
        before = "" if control.ptq_metric is None else f" (before accuracy control {control.ptq_metric:.2f})"
        lines.append(
            f"  accuracy control: {control.metric} {control.fp32_metric:.2f} (FP32) → {control.int8_metric:.2f} (INT8)"
            f"{before}, drop {control.fp32_metric - control.int8_metric:.2f} "
            f"{'≤' if control.passed else '>'} max drop {control.max_drop:g}; "
            f"kept in floating point: {', '.join(control.kept_in_float) or 'none'}"
        )
    return "\n".join(lines)


def rejected_checks(what: str, manifest: Manifest) -> str:
    """The checks of a result that was rejected: the tables that explain why, and no "written" line,
    because nothing was written."""
    lines = [f"{what}: checks that rejected it (nothing was written)"]
    if manifest.sparsity is not None:
        lines.append(sparsity_table(manifest.sparsity))
    if manifest.parity is not None:
        lines.append(parity_table(manifest.parity))
    return "\n".join(lines)


def sparse_ir_precision(info: SparseIRInfo, weight_format: str) -> str:
    """The sparse IR's precision in words, from its record; an FP32 sparse IR in an INT8 folder (a copy
    made before calibrate regenerated it) is named for what it is."""
    if info.precision == "int8":
        quant = ", ".join(f"{n} {k}" for k, n in sorted(info.activation_quant.items()))
        if not quant:
            return "INT8 weights"
        smooth = (
            f", SmoothQuant factors folded into {info.smooth_quant_folded}"
            if info.smooth_quant_folded
            else ""
        )
        return f"INT8 weights (INT8 compute: {quant} activation quantization{smooth})"
    if weight_format == "int8":
        return (
            "FP32 weights although this folder is INT8: not the calibrated model (re-run pruneofa calibrate "
            "on the FP32 export)"
        )
    return "FP32 weights"


def export_summary(output: str, manifest: Manifest, *, per_tensor: bool = False) -> str:
    info = manifest.export
    assert info is not None
    size = sum(info.files.values())
    shown = [
        (n, b)
        for n, b in sorted(info.files.items())
        if b > 100_000 or n in MODEL_FILES["openvino"] + MODEL_FILES["onnx"]
    ]
    lines = [
        f"Exported {manifest.source.model} ({manifest.source.model_type}, {info.task}) to {info.target}: {output}",
        f"  files: {', '.join(f'{n} {b / 1e6:.2f} MB' for n, b in shown)}"
        f" (total {size / 1e6:.1f} MB); weights {info.weight_format}; wall time {info.wall_time_s:.1f} s",
    ]
    if info.target == "openvino":
        lines.append(
            "  tokenizer: openvino_tokenizer.xml written"
            if info.tokenizer_converted
            else f"  tokenizer: not converted ({info.tokenizer_note})"
        )
    if info.sparse_ir is not None:
        s = info.sparse_ir
        lines.append(
            f"  sparse IR: {s.file}, {sparse_ir_precision(s, info.weight_format)}, {s.sparse_layers} of "
            f"{s.linear_layers} Linear layers as SparseLinear "
            f"({', '.join(f'{n} {k}' for k, n in s.formats.items()) or 'none'}; chosen for {s.kernel_path}); "
            f"constants {'identical to' if s.weights_identical else 'DIFFERENT from'} the {s.precision.upper()} "
            + (
                f"dense IR's, outputs within {s.max_abs_error:.2g}"
                + (f" (bound {s.tolerance:.2g})" if s.tolerance is not None else "")
                if s.p99_abs_error is None
                else f"dense IR's, output difference mean {s.mean_abs_error or 0.0:.2g}, 99th percentile "
                f"{s.p99_abs_error:.2g} (bound {s.tolerance or 0.0:.2g}), largest {s.max_abs_error:.2g}"
            )
            + "; needs the pruneofa kernels library to load (docs/kernels.md)"
        )
    if manifest.shrink is not None:
        lines.append(shrink_table(manifest.shrink))
    if manifest.sparsity is not None:
        lines.append(sparsity_table(manifest.sparsity, per_tensor=per_tensor))
    if manifest.parity is not None:
        lines.append(parity_table(manifest.parity))
    return "\n".join(lines)
