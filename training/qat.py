"""``pruneofa qat``: NNCF quantization-aware training of a sparse task model, the pattern locked.

NNCF 3 made QAT "quantize, then write your own training loop": ``nncf.quantize`` on the PyTorch
model (transformer model type) inserts calibrated fake quantizers as hooks and returns the same
Hugging Face class, which then trains like any model. So here:

1. (stage 1, only when the input is not yet a task model) sparse transfer in FP32 with distillation
   — exactly ``pruneofa finetune``, written to ``<output>-transfer``;
2. calibrate NNCF's quantizers on training samples with the model in eval mode (dropout off while
   the statistics are collected, as NNCF's QAT guide does), with the overflow fix this CPU needs;
3. fine-tune at a small learning rate (NNCF's advice) with distillation from the dense task teacher.

Why the pattern cannot drift: every pruned weight gets a gradient hook that zeroes its gradient, so
AdamW's moments for it stay zero and its update is exactly zero (decoupled weight decay of 0 is 0).
Masks as parametrizations (what ``finetune`` uses) would hide the weight constant from NNCF's graph,
which then could not attach a weight quantizer. Weights are quantized symmetrically (zero point 0),
so a zero weight is the integer 0, in training and in the exported INT8 model. Both are checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from pruneofa.core import modelio
from pruneofa.core.cpu import detect_cpu, overflow_fix_mode
from pruneofa.core.errors import CheckFailed, InputError
from pruneofa.core.manifest import QATInfo, read_manifest
from pruneofa.core.qatfolder import save_qat_model
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.training.callbacks import SparsityLogCallback
from pruneofa.training.config import TrainConfig
from pruneofa.training.engine import (
    TrainResult,
    default_output,
    finish,
    load_dev,
    load_model,
    run_training,
    stage_inputs,
    task_head_options,
    train_dataset,
)
from pruneofa.training.evaluate import evaluate
from pruneofa.training.masks import regrown, sparsity_by_module, zero_patterns
from pruneofa.training.recipe import QATStage, Recipe, load_recipe
from pruneofa.training.stages import train_task

_LABEL_KEYS = ("labels", "start_positions", "end_positions")


def overflow_fix(choice: str, saturation_risk: bool) -> tuple[Any, str]:
    """NNCF's overflow-fix mode for ``choice`` (``auto`` follows the CPU) and a description of why."""
    from nncf.quantization.advanced_parameters import OverflowFix

    value, why = overflow_fix_mode(choice, saturation_risk)
    mode = OverflowFix(value)
    return mode, f"nncf overflow_fix={mode.value} ({why})"


def freeze_zeros(model: torch.nn.Module, patterns: dict[str, torch.Tensor]) -> list[Any]:
    """Zero the gradient of every weight in ``patterns`` (returns the hook handles)."""
    modules = dict(model.named_modules())
    handles = []
    for name, zeros in patterns.items():
        if bool(zeros.any()):
            weight = modules[name].weight
            if not isinstance(weight, torch.Tensor):
                raise TypeError(f"{name}.weight is not a tensor")
            keep = (~zeros).to(weight.dtype)
            handles.append(weight.register_hook(lambda grad, keep=keep: grad * keep))
    return handles


def calibration_batches(
    dataset: Any, collator: Any, samples: int, batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """The first ``samples`` training examples as model inputs (labels dropped), in batches."""
    count = min(samples, len(dataset))
    batches = []
    for start in range(0, count, batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, count))])
        batches.append({k: v for k, v in batch.items() if k not in _LABEL_KEYS})
    return batches


def quantize_for_training(
    model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], stage: QATStage, saturation_risk: bool
) -> tuple[torch.nn.Module, str]:
    """``nncf.quantize`` on the torch model in eval mode; returns the model with quantizers and the fix used."""
    import logging
    import os

    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    _prepare_nncf_extension()
    mode, description = overflow_fix(stage.overflow_fix, saturation_risk)
    advanced = AdvancedQuantizationParameters(overflow_fix=mode)
    if not stage.smooth_quant:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=-1)
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")
    try:
        quantized = nncf.quantize(
            model.eval(),
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset(stage.preset),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),  # NNCF counts dataset items, and ours are batches
            advanced_parameters=advanced,
        )
    finally:
        logger.setLevel(level)
    return quantized, description


def _prepare_nncf_extension() -> None:
    """NNCF compiles a C++ kernel for CPU fake quantization on first use (about 2 minutes on 2 cores)
    and guards the build with a lock file; a build killed half-way leaves the lock behind and every
    later run waits on it. Remove a lock older than 20 minutes (no build takes that long) and say so."""
    import time

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPULoader

    lock = Path(QuantizedFunctionsCPULoader.get_build_dir()) / "lock"
    if lock.is_file() and time.time() - lock.stat().st_mtime > 20 * 60:
        print(f"pruneofa qat: removing a stale NNCF build lock {lock}", file=sys.stderr)
        lock.unlink(missing_ok=True)
    if not (Path(QuantizedFunctionsCPULoader.get_build_dir()) / "quantized_functions_cpu.so").is_file():
        print(
            "pruneofa qat: NNCF compiles its CPU quantization kernel once (about 2 minutes)...",
            file=sys.stderr,
        )


def quantizer_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(weight quantizers, activation quantizers) NNCF inserted."""
    from nncf.torch.quantization.layers import BaseQuantizer

    weights = activations = 0
    for name, module in model.named_modules():
        if isinstance(module, BaseQuantizer):
            # Weight quantizers hook the weight port of an operation (port 1 of linear/embedding).
            if (
                "pre_hooks" in name
                and ("linear/" in name or "embedding/" in name)
                and name.split("__")[-1].startswith("1")
            ):
                weights += 1
            else:
                activations += 1
    return weights, activations


def _is_task_model(location: str, spec: TaskSpec) -> bool:
    auto_class, _ = task_head_options(spec)
    config = modelio.load_config(modelio.resolve_model_source(location))
    suffix = auto_class.removeprefix("AutoModel")
    return any(str(a).endswith(suffix) for a in (getattr(config, "architectures", None) or []))


def qat(
    model: str,
    config: TrainConfig,
    *,
    task: str,
    data: str,
    teacher: str | None = None,
    recipe: str | Path | None = None,
    command: list[str] | None = None,
) -> TrainResult:
    """Quantization-aware training of ``model`` on ``task`` with its sparsity pattern locked.

    ``model`` is a fine-tuned sparse task model (stage 2 only) or a sparse pre-trained model (stage 1
    sparse transfer first). The output folder is a QAT model folder (:mod:`pruneofa.core.qatfolder`).
    """
    from transformers import DataCollatorWithPadding, set_seed

    plan: Recipe = load_recipe(recipe if recipe is not None else "qat-two-stage")
    spec = get_task(task)
    set_seed(config.seed)
    name = modelio.resolve_model_source(model).display_name
    inputs = stage_inputs(model, data, teacher, recipe)
    output = default_output(config, name, f"{spec.name}-qat", inputs=inputs)
    transfer_steps = 0
    if not _is_task_model(model, spec):
        transfer_steps = max(1, round(plan.transfer.share * config.steps))
        if transfer_steps >= config.steps:
            raise InputError(f"--steps {config.steps} leaves no QAT steps after stage 1; give more steps")
        stage1 = output.parent / f"{output.name}-transfer"
        if not _finished(stage1, "finetune"):
            print(f"pruneofa qat: stage 1, sparse transfer → {stage1}", file=sys.stderr)
            train_task(
                model,
                spec,
                data,
                config.model_copy(
                    update={
                        "output": stage1,
                        "steps": transfer_steps,
                        "learning_rate": plan.transfer.learning_rate,
                    }
                ),
                output=stage1,
                inputs=inputs,
                teacher_dir=teacher,
                recipe=plan,
                command=[*(command or ["pruneofa.training.qat"]), "(stage 1)"],
                stage="finetune",
            )
        model = str(stage1)
    qat_config = config.model_copy(
        update={
            "steps": config.steps - transfer_steps,
            "learning_rate": config.learning_rate or plan.qat.learning_rate,
        }
    )
    auto_class, _ = task_head_options(spec)
    source, student, _ = load_model(model, auto_class, allow_new_head=False, what="model")
    tokenizer = modelio.load_tokenizer(source)
    teacher_model = None
    if teacher is not None:
        _, teacher_model, _ = load_model(teacher, auto_class, allow_new_head=False, what="teacher")
    dataset = train_dataset(spec, data, tokenizer, qat_config)
    if len(dataset) == 0:
        raise InputError("the training data produced no examples; check --data and --seq-len")
    collator = DataCollatorWithPadding(tokenizer)
    dev = load_dev(spec, data, qat_config)

    def score(m: torch.nn.Module) -> dict[str, float]:
        return evaluate(m, tokenizer, spec, dev, seq_len=qat_config.seq_len, stride=qat_config.stride)

    metric_before = score(student)
    patterns = zero_patterns(student, plan.pruning)
    cpu = detect_cpu()
    batches = calibration_batches(dataset, collator, plan.qat.calibration_samples, qat_config.batch_size)
    print(
        f"pruneofa qat: calibrating NNCF quantizers on {sum(len(b['input_ids']) for b in batches)} samples",
        file=sys.stderr,
    )
    quantized, fix = quantize_for_training(student, batches, plan.qat, cpu.int8_saturation_risk)
    metric_ptq = score(quantized)
    lost = regrown(quantized, patterns)
    if lost:
        raise CheckFailed(
            f"nncf.quantize changed pruned weights ({sum(lost.values())} non-zero); nothing written"
        )
    handles = freeze_zeros(quantized, patterns)
    run = run_training(
        kind="qat",
        model=quantized,
        tokenizer=tokenizer,
        dataset=dataset,
        collator=collator,
        teacher=teacher_model,
        distill_kind=spec.kind,
        distillation=plan.distillation,
        callbacks=[SparsityLogCallback(plan.pruning)],
        config=qat_config,
        output=output,
        recipe=plan,
        default_lr=plan.qat.learning_rate,
    )
    for handle in handles:
        handle.remove()
    trained = run.trainer.model.eval()
    lost = regrown(trained, patterns)
    if lost:
        first = next(iter(lost))
        raise CheckFailed(f"{first}: {lost[first]} pruned weights regrew during QAT (a bug); nothing written")
    metrics = score(trained)
    print(
        f"pruneofa qat: {spec.name} dev "
        + ", ".join(
            f"{k} {v:.2f} (FP32 input {metric_before[k]:.2f}, PTQ only {metric_ptq[k]:.2f})"
            for k, v in metrics.items()
        ),
        file=sys.stderr,
    )
    weights, activations = quantizer_counts(trained)
    info = run.info(
        qat_config,
        task=spec.name,
        data=str(data),
        teacher=str(teacher) if teacher else None,
        recipe=plan.name,
        layer_sparsity={k: round(v, 6) for k, v in sparsity_by_module(trained, plan.pruning).items()},
    )
    return finish(
        stage="qat",
        kind="qat",
        model=trained,
        tokenizer=tokenizer,
        source=source,
        output=output,
        inputs=inputs,
        config=config,
        info=info,
        metrics=metrics,
        recipe=plan,
        command=command,
        checkpoints=run.checkpoints,
        save=save_qat_model,
        qat=QATInfo(
            method="nncf.quantize (torch, transformer) + fine-tuning",
            preset=plan.qat.preset,
            saturation_fix=fix,
            cpu=cpu.summary(),
            calibration_samples=sum(len(b["input_ids"]) for b in batches),
            weight_quantizers=weights,
            activation_quantizers=activations,
            transfer_steps=transfer_steps,
            metric_before_qat=metric_before,
            metric_ptq_only=metric_ptq,
        ),
    )


def _finished(folder: Path, stage: str) -> bool:
    try:
        manifest = read_manifest(folder) if folder.is_dir() else None
    except InputError:
        return False
    return manifest is not None and manifest.stage == stage
