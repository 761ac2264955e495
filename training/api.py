"""``pruneofa teacher | prune | finetune`` as Python functions, all on ``transformers.Trainer``.

- teacher (corpus): continue masked-LM training of the dense model (an MLM head tied to the word
  embeddings is added where the checkpoint has none, e.g. the MiniLM default);
- teacher (task): fine-tune a dense task teacher, evaluated on the dev data;
- prune: masked-LM + distillation from the teacher while the recipe's cubic schedule prunes the
  student; masks baked in at the end, exactly the recipe's sparsity per layer;
- finetune: sparse transfer — the pattern is locked (mask = weight != 0) and the task is learned with
  distillation from a dense task teacher; evaluated on the dev data.

Checkpoints go to ``.<output>.checkpoints`` beside the output; running the same command again
resumes from the last one. The finished folder is written atomically with ``pruneofa.json``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from pruneofa import modelio
from pruneofa.errors import CheckFailed, InputError, validated
from pruneofa.fsutil import atomic_output_dir, check_output_dir
from pruneofa.manifest import (
    Manifest,
    SourceInfo,
    TrainingInfo,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.tasks import TaskSpec, get_task
from training.callbacks import PruningCallback
from training.datasets import mlm_blocks, qa_dataset, task_dataset
from training.distill import DistillationConfig
from training.evaluate import evaluate
from training.masks import (
    apply_pruning,
    lock_sparsity,
    pruned_modules,
    regrown,
    remove_pruning,
    sparsity_by_module,
    update_masks,
    zero_patterns,
)
from training.recipe import Recipe, dump_recipe, load_recipe
from training.schedule import rewinding_lr_factor
from training.trainer import DistillationTrainer

# Weights a task or MLM head may add (new, trained from scratch); anything else missing is an error.
_NEW_HEAD = re.compile(r"(^|\.)(classifier|qa_outputs|pre_classifier|pooler|cls|vocab_\w+|lm_head)\.")


class TrainConfig(BaseModel):
    """Budget and bookkeeping shared by the three commands (the recipe holds the method)."""

    model_config = ConfigDict(extra="forbid")

    output: Path | None = None
    overwrite: bool = False
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=1)
    seq_len: int = Field(64, ge=16, le=4096)
    learning_rate: float | None = Field(None, gt=0)
    seed: int = 0
    train_limit: int | None = Field(None, ge=1)
    eval_limit: int | None = Field(None, ge=1)
    save_steps: int = Field(200, ge=1)
    logging_steps: int = Field(20, ge=1)
    report_to: list[str] = Field(default_factory=list)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    stride: int = Field(32, ge=8)


def make_config(**options: Any) -> TrainConfig:
    return validated(TrainConfig, **options)


@dataclass
class RunOutcome:
    """What a Trainer run left: the trainer (model, state), timings, the loss curve and where checkpoints are."""

    trainer: Any
    wall_time_s: float
    step_time_s: float
    loss_curve: list[dict[str, float]]
    checkpoints: Path

    def info(self, config: TrainConfig, **fields: Any) -> dict[str, Any]:
        """The fields of :class:`~pruneofa.manifest.TrainingInfo` every stage shares, plus ``fields``."""
        return dict(
            steps=self.trainer.state.global_step,
            batch_size=config.batch_size,
            seq_len=config.seq_len,
            learning_rate=self.trainer.args.learning_rate,
            seed=config.seed,
            wall_time_s=round(self.wall_time_s, 1),
            step_time_s=round(self.step_time_s, 3),
            loss_curve=self.loss_curve,
            **fields,
        )


@dataclass
class TrainResult:
    output: Path
    manifest: Manifest


def _load(location: str, auto_class: str, *, allow_new_head: bool, what: str, **kwargs: Any):
    import transformers

    source = modelio.resolve_model_source(location)
    modelio.refuse_qat_folder(source)
    config = modelio.load_config(source)
    modelio.architecture_spec(config)
    model, info = getattr(transformers, auto_class).from_pretrained(
        source.location, output_loading_info=True, weights_only=True, **kwargs
    )
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    unexpected_missing = [k for k in missing if not _NEW_HEAD.search(k)] if allow_new_head else missing
    if unexpected_missing:
        raise InputError(
            f"{what} {source.location} lacks {len(unexpected_missing)} weights (e.g. {unexpected_missing[0]})"
        )
    return source, model, missing


def _trainer_args(config: TrainConfig, checkpoints: Path, recipe: Recipe | None, default_lr: float):
    from transformers import TrainingArguments

    optimizer = recipe.optimizer if recipe is not None else None
    # torchrun/accelerate on CPUs: the Trainer only joins the process group with a CPU backend named.
    distributed_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return TrainingArguments(
        ddp_backend="gloo" if distributed_cpu else None,
        output_dir=str(checkpoints),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate or (optimizer.learning_rate if optimizer else default_lr),
        weight_decay=optimizer.weight_decay if optimizer else 0.01,
        warmup_steps=int((optimizer.warmup_ratio if optimizer else 0.06) * config.steps),
        lr_scheduler_type="linear",
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=config.logging_steps,
        report_to=config.report_to,
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def _run(
    *,
    kind: str,
    model: torch.nn.Module,
    tokenizer: Any,
    dataset: Any,
    collator: Any,
    teacher: torch.nn.Module | None,
    distill_kind: str,
    distillation: DistillationConfig,
    callbacks: list,
    config: TrainConfig,
    output: Path,
    recipe: Recipe | None,
    default_lr: float,
    lr_factor: Any = None,
):
    from transformers.trainer_utils import get_last_checkpoint

    if len(dataset) == 0:
        raise InputError("the training data produced no examples; check --corpus/--data and --seq-len")
    checkpoints = output.parent / f".{output.name}.checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    trainer = DistillationTrainer(
        model=model,
        args=_trainer_args(config, checkpoints, recipe, default_lr),
        train_dataset=dataset,
        data_collator=collator,
        callbacks=callbacks,
        teacher=teacher,
        distillation=distillation,
        kind=distill_kind,
        lr_factor=lr_factor,
    )
    last = get_last_checkpoint(str(checkpoints))
    if last:
        print(f"pruneofa {kind}: resuming from {last}", file=sys.stderr)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - started
    if not trainer.is_world_process_zero():
        # Under torchrun/accelerate every rank trains; one evaluates and writes the output folder.
        raise SystemExit(0)
    steps_run = max(1, result.global_step - (int(Path(last).name.split("-")[-1]) if last else 0))
    curve = [
        {k: float(v) for k, v in entry.items() if isinstance(v, int | float)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return RunOutcome(trainer, wall, wall / steps_run, curve, checkpoints)


def _finish(
    *,
    stage: str,
    kind: str,
    model: torch.nn.Module,
    tokenizer: Any,
    source: Any,
    output: Path,
    config: TrainConfig,
    info: dict[str, Any],
    metrics: dict[str, float],
    recipe: Recipe | None,
    command: list[str] | None,
    checkpoints: Path,
    save: Any = None,
    qat: Any = None,
) -> TrainResult:
    """Write the output folder atomically: model (``save(model, folder)`` or ``save_pretrained``),
    tokenizer, recipe and ``pruneofa.json``; then drop the checkpoints."""
    parent = read_manifest(source.path) if source.local else None
    with atomic_output_dir(output, overwrite=config.overwrite) as staging:
        if save is None:
            model.save_pretrained(staging)
        else:
            save(model, staging)
        tokenizer.save_pretrained(staging)
        if recipe is not None:
            dump_recipe(recipe, staging / "recipe.yaml")
        manifest = Manifest(
            stage=stage,
            command=command or [f"training.{stage}", source.location],
            created_at=now_utc(),
            versions=library_versions(),
            source=SourceInfo(
                model=source.location,
                model_type=model.config.model_type,
                architecture=type(model).__name__,
                file_sha256=hash_model_files(source.path) if source.local else {},
            ),
            lineage=(parent.lineage + [parent.as_lineage()]) if parent else [],
            training=TrainingInfo(kind=kind, **info),
            qat=qat,
            metrics=metrics,
        )
        write_manifest(staging, manifest)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainResult(output, manifest)


def _default_output(config: TrainConfig, name: str, stage: str) -> Path:
    output = config.output or Path("runs") / f"{name}-{stage}"
    return check_output_dir(output, overwrite=config.overwrite)


def _mlm_collator(tokenizer: Any, config: TrainConfig):
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=config.mlm_probability, seed=config.seed
    )


def prepare_teacher(
    model: str | None,
    config: TrainConfig,
    *,
    corpus: str | None = None,
    task: str | None = None,
    data: str | None = None,
    command: list[str] | None = None,
) -> TrainResult:
    """Continue masked-LM training on ``corpus``, or fine-tune a dense task teacher on ``task``/``data``."""
    from transformers import AutoTokenizer, set_seed

    if (corpus is None) == (task is None):
        raise InputError("give either --corpus (masked-LM teacher) or --task with --data (task teacher)")
    if task is not None and data is None:
        raise InputError("--task needs --data")
    set_seed(config.seed)
    name = modelio.resolve_model_source(model).display_name
    output = _default_output(config, name, "teacher")
    if corpus is not None:
        source, student, added = _load(model, "AutoModelForMaskedLM", allow_new_head=True, what="model")
        tokenizer = AutoTokenizer.from_pretrained(source.location)
        dataset = mlm_blocks(corpus, tokenizer, seq_len=config.seq_len, limit=config.train_limit)
        run = _run(
            kind="teacher",
            model=student,
            tokenizer=tokenizer,
            dataset=dataset,
            collator=_mlm_collator(tokenizer, config),
            teacher=None,
            distill_kind="masked-lm",
            distillation=DistillationConfig(),
            callbacks=[],
            config=config,
            output=output,
            recipe=None,
            default_lr=5e-5,
        )
        info = run.info(config, task="mlm", data=corpus)
        metrics = {"mlm_head_added": float(bool(added))}
        return _finish(
            stage="teacher",
            kind="mlm-teacher",
            model=run.trainer.model,
            tokenizer=tokenizer,
            source=source,
            output=output,
            config=config,
            info=info,
            metrics=metrics,
            recipe=None,
            command=command,
            checkpoints=run.checkpoints,
        )
    spec = get_task(task)
    return _task_training(
        model,
        spec,
        data,
        config,
        output=output,
        teacher_dir=None,
        recipe=None,
        command=command,
        stage="teacher",
    )


def task_head_options(spec: TaskSpec) -> tuple[str, dict[str, Any]]:
    """The transformers auto class of ``spec``'s head and the config options it needs."""
    from pruneofa.support import TASKS as EXPORT_TASKS

    auto_class = EXPORT_TASKS[spec.export_task].auto_class
    if spec.kind == "regression":
        return auto_class, {"num_labels": 1, "problem_type": "regression"}
    if spec.kind == "question-answering":
        return auto_class, {"num_labels": 2}  # start and end logits, whatever the base config says
    if spec.kind != "classification":
        return auto_class, {}
    return auto_class, {
        "num_labels": spec.num_labels,
        "id2label": dict(enumerate(spec.labels)),
        "label2id": {n: i for i, n in enumerate(spec.labels)},
    }


def train_dataset(spec: TaskSpec, data: str, tokenizer: Any, config: TrainConfig):
    """The tokenized training split of a task (SQuAD as stride-based features)."""
    if spec.kind == "question-answering":
        dataset, _, _ = qa_dataset(
            spec,
            data,
            tokenizer,
            split="train",
            seq_len=config.seq_len,
            stride=config.stride,
            limit=config.train_limit,
            seed=config.seed,
        )
        return dataset
    dataset, _ = task_dataset(
        spec,
        data,
        tokenizer,
        split="train",
        seq_len=config.seq_len,
        limit=config.train_limit,
        seed=config.seed,
    )
    return dataset


def _task_training(model, spec: TaskSpec, data, config, *, output, teacher_dir, recipe, command, stage):
    from transformers import AutoTokenizer, DataCollatorWithPadding

    auto_class, labels = task_head_options(spec)
    source, student, _ = _load(model, auto_class, allow_new_head=True, what="model", **labels)
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    teacher = None
    if teacher_dir is not None:
        _, teacher, _ = _load(teacher_dir, auto_class, allow_new_head=False, what="teacher")
    dataset = train_dataset(spec, data, tokenizer, config)
    callbacks, initial_zeros = [], {}
    if stage == "finetune":
        initial_zeros = zero_patterns(student, recipe.pruning if recipe else None)
        lock_sparsity(student, recipe.pruning if recipe else None)
    run = _run(
        kind=stage,
        model=student,
        tokenizer=tokenizer,
        dataset=dataset,
        collator=DataCollatorWithPadding(tokenizer),
        teacher=teacher,
        distill_kind=spec.kind,
        distillation=recipe.distillation if recipe else DistillationConfig(),
        callbacks=callbacks,
        config=config,
        output=output,
        recipe=recipe,
        default_lr=5e-5,
    )
    trained = run.trainer.model
    layer_sparsity = {}
    if stage == "finetune":
        remove_pruning(trained)
        lost = regrown(trained, initial_zeros)
        if lost:
            raise CheckFailed(
                f"{next(iter(lost))}: pruned weights regrew during fine-tuning (a bug); nothing written"
            )
        layer_sparsity = {k: round(v, 6) for k, v in sparsity_by_module(trained).items()}
    dev = load_dev(spec, data, config)
    metrics = evaluate(trained, tokenizer, spec, dev, seq_len=config.seq_len, stride=config.stride)
    print(
        f"pruneofa {stage}: {spec.name} dev " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()),
        file=sys.stderr,
    )
    info = run.info(
        config,
        task=spec.name,
        data=str(data),
        teacher=str(teacher_dir) if teacher_dir else None,
        recipe=recipe.name if recipe else None,
        layer_sparsity=layer_sparsity,
    )
    return _finish(
        stage=stage,
        kind="task-teacher" if stage == "teacher" else "finetune",
        model=trained,
        tokenizer=tokenizer,
        source=source,
        output=output,
        config=config,
        info=info,
        metrics=metrics,
        recipe=recipe,
        command=command,
        checkpoints=run.checkpoints,
    )


def load_dev(spec: TaskSpec, data: str, config: TrainConfig) -> list:
    from pruneofa.data import load_examples

    return load_examples(spec, data, split="dev", limit=config.eval_limit)


def prune(
    model: str,
    config: TrainConfig,
    *,
    teacher: str,
    corpus: str,
    recipe: str | Path,
    command: list[str] | None = None,
) -> TrainResult:
    """Prune a pre-trained model during masked-LM training with distillation from ``teacher``."""
    from transformers import AutoTokenizer, set_seed

    plan = load_recipe(recipe)
    if plan.schedule is None:
        raise InputError(
            f"recipe {plan.name} has no schedule; 'pruneofa prune' needs one (see training/recipes)"
        )
    schedule = plan.schedule.at(config.steps)
    set_seed(config.seed)
    source, student, _ = _load(model, "AutoModelForMaskedLM", allow_new_head=False, what="model")
    output = _default_output(config, source.display_name, "pruned")
    _, teacher_model, _ = _load(teacher, "AutoModelForMaskedLM", allow_new_head=False, what="teacher")
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    apply_pruning(student, plan.pruning)
    dataset = mlm_blocks(corpus, tokenizer, seq_len=config.seq_len, limit=config.train_limit)
    run = _run(
        kind="prune",
        model=student,
        tokenizer=tokenizer,
        dataset=dataset,
        collator=_mlm_collator(tokenizer, config),
        teacher=teacher_model,
        distill_kind="masked-lm",
        distillation=plan.distillation,
        callbacks=[PruningCallback(plan.pruning, schedule)],
        config=config,
        output=output,
        recipe=plan,
        default_lr=1e-4,
        lr_factor=rewinding_lr_factor(schedule, config.steps, int(plan.optimizer.warmup_ratio * config.steps))
        if plan.optimizer.lr_rewinding
        else None,
    )
    pruned = run.trainer.model
    if schedule.final_sparsity > 0 and (
        schedule.freeze_step is None or run.trainer.state.global_step <= schedule.freeze_step
    ):
        update_masks(pruned, schedule.final_sparsity, plan.pruning)
    achieved = {m.name: float((m.weight == 0).float().mean()) for m in pruned_modules(pruned)}
    remove_pruning(pruned)
    if plan.pruning.pattern != "structured":
        for name, value in achieved.items():
            numel = dict(pruned.named_modules())[name].weight.numel()
            if abs(value - schedule.final_sparsity) > 1.5 / numel and plan.pruning.scope == "uniform":
                raise CheckFailed(
                    f"{name} ended at {value:.4f} sparsity, not the recipe's {schedule.final_sparsity}"
                )
    info = run.info(
        config,
        task="mlm",
        data=corpus,
        teacher=str(teacher),
        recipe=plan.name,
        layer_sparsity={k: round(v, 6) for k, v in sparsity_by_module(pruned).items()},
    )
    return _finish(
        stage="prune",
        kind="prune",
        model=pruned,
        tokenizer=tokenizer,
        source=source,
        output=output,
        config=config,
        info=info,
        metrics={},
        recipe=plan,
        command=command,
        checkpoints=run.checkpoints,
    )


def finetune(
    model: str,
    config: TrainConfig,
    *,
    task: str,
    data: str,
    teacher: str | None = None,
    recipe: str | Path | None = None,
    command: list[str] | None = None,
) -> TrainResult:
    """Sparse transfer: lock the sparsity pattern of ``model`` and learn ``task`` (with distillation)."""
    from transformers import set_seed

    set_seed(config.seed)
    spec = get_task(task)
    plan = load_recipe(recipe) if recipe is not None else None
    output = _default_output(config, modelio.resolve_model_source(model).display_name, f"{spec.name}")
    return _task_training(
        model,
        spec,
        data,
        config,
        output=output,
        teacher_dir=teacher,
        recipe=plan,
        command=command,
        stage="finetune",
    )
