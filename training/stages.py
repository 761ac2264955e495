"""``pruneofa teacher | prune | finetune`` as Python functions, each a composition of the engine
(:mod:`pruneofa.training.engine`: load → run → finish) on ``transformers.Trainer``.

- teacher (corpus): continue masked-LM training of the dense model. Where the checkpoint has no MLM
  head (the MiniLM default), one tied to the word embeddings is added and first trained alone with the
  encoder frozen (``head_warmup`` of the steps, at ``head_learning_rate``), then the whole model learns;
  the checkpoint's pooler is carried along (masked-LM classes drop it);
- teacher (task): fine-tune a dense task teacher, evaluated on the dev data;
- prune: masked-LM + distillation from the teacher while the recipe's cubic schedule prunes the
  student, its pooler included when the checkpoint has one; masks baked in at the end, exactly the
  recipe's sparsity per layer;
- finetune: sparse transfer — the pattern is locked (mask = weight != 0) and the task is learned with
  distillation from a dense task teacher; evaluated on the dev data.

Checkpoints go to ``.<output>.checkpoints`` beside the output; running the same command again
resumes from the last one. The finished folder is written atomically with ``pruneofa.json``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pruneofa.core import modelio
from pruneofa.core.errors import CheckFailed, InputError
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.training.callbacks import HeadWarmupCallback, PruningCallback, SparsityLogCallback
from pruneofa.training.config import HEAD_LR, HEAD_WARMUP, TrainConfig
from pruneofa.training.datasets import corpus_label, mlm_blocks
from pruneofa.training.distill import DistillationConfig
from pruneofa.training.engine import (
    TrainResult,
    default_output,
    finish,
    load_dev,
    load_model,
    mlm_collator,
    run_training,
    stage_inputs,
    task_head_options,
    train_dataset,
)
from pruneofa.training.evaluate import evaluate
from pruneofa.training.masks import (
    apply_pruning,
    lock_sparsity,
    pruned_modules,
    regrown,
    remove_pruning,
    sparsity_by_module,
    update_masks,
    zero_patterns,
)
from pruneofa.training.recipe import load_recipe
from pruneofa.training.schedule import rewinding_lr_factor, two_phase_lr_factor

TEACHER_LR = 5e-5  # the reference's teacher preparation and student pruning: transformers' default
# Sparse transfer (``finetune``) without --learning-rate: a sparse encoder wants a larger step than a dense
# one (docs/training.md, "The task learning rate"); a recipe's optimizer rate is its pruning rate, not this.
TRANSFER_LR = 2e-4
TASK_TEACHER_LR = 5e-5  # a dense task teacher without --learning-rate


def prepare_teacher(
    model: str | None,
    config: TrainConfig,
    *,
    corpus: str | Sequence[str] | None = None,
    task: str | None = None,
    data: str | None = None,
    command: list[str] | None = None,
    head_warmup: float = HEAD_WARMUP,
    head_learning_rate: float = HEAD_LR,
) -> TrainResult:
    """Continue masked-LM training on ``corpus`` (one source or several, mixed: see
    :func:`~pruneofa.training.datasets.mlm_blocks`), or fine-tune a dense task teacher on ``task``/``data``.

    When the checkpoint has no MLM head, the new one first learns alone for ``head_warmup`` of the steps
    (encoder and embeddings frozen) at ``head_learning_rate``, then the whole model at the learning rate;
    each phase has its own linear warm-up and decay. Otherwise (or with ``head_warmup=0``) every weight
    learns from step 0: distilling through a head trained together with the encoder from a
    random start passes the signal through a barely trained 30,522-way layer."""
    from transformers import set_seed

    if (corpus is None) == (task is None):
        raise InputError("give either --corpus (masked-LM teacher) or --task with --data (task teacher)")
    if task is not None and data is None:
        raise InputError("--task needs --data")
    if not 0 <= head_warmup <= 1:
        raise InputError(f"--head-warmup must be a share of the steps in [0, 1], got {head_warmup}")
    if head_learning_rate <= 0:
        raise InputError(f"--head-learning-rate must be positive, got {head_learning_rate}")
    set_seed(config.seed)
    name = modelio.resolve_model_source(model).display_name
    inputs = stage_inputs(model, corpus, data)
    output = default_output(config, name, "teacher", inputs=inputs)
    if corpus is not None:
        source, student, added = load_model(
            model, "AutoModelForMaskedLM", allow_new_head=True, what="model", keep_pooler=True
        )
        tokenizer = modelio.load_tokenizer(source)
        dataset = mlm_blocks(
            corpus, tokenizer, seq_len=config.seq_len, limit=config.train_limit, seed=config.seed
        )
        head = {name for name, _ in student.named_parameters() if name in set(added)}
        head_steps = round(head_warmup * config.steps) if head else 0
        learning_rate = config.learning_rate or TEACHER_LR
        run = run_training(
            kind="teacher",
            model=student,
            tokenizer=tokenizer,
            dataset=dataset,
            collator=mlm_collator(tokenizer, config),
            teacher=None,
            distill_kind="masked-lm",
            distillation=DistillationConfig(),
            callbacks=[HeadWarmupCallback(head, head_steps)] if head_steps else [],
            config=config,
            output=output,
            recipe=None,
            default_lr=TEACHER_LR,
            lr_factor=two_phase_lr_factor(head_steps, config.steps, 0.06, head_learning_rate / learning_rate)
            if head_steps
            else None,
        )
        info = run.info(config, task="mlm", data=corpus_label(corpus))
        metrics = {"mlm_head_added": float(bool(added)), "head_warmup_steps": float(head_steps)}
        return finish(
            stage="teacher",
            kind="mlm-teacher",
            model=run.trainer.model,
            tokenizer=tokenizer,
            source=source,
            output=output,
            inputs=inputs,
            config=config,
            info=info,
            metrics=metrics,
            recipe=None,
            command=command,
            checkpoints=run.checkpoints,
        )
    if task is None or data is None:  # checked above: exactly one of --corpus and --task with --data
        raise InputError("give either --corpus (masked-LM teacher) or --task with --data (task teacher)")
    spec = get_task(task)
    return train_task(
        model,
        spec,
        data,
        config,
        output=output,
        inputs=inputs,
        teacher_dir=None,
        recipe=None,
        command=command,
        stage="teacher",
    )


def train_task(model, spec: TaskSpec, data, config, *, output, inputs, teacher_dir, recipe, command, stage):
    """Fine-tune ``model`` on ``spec`` (a dense task teacher, or sparse transfer with the pattern locked
    when ``stage`` is ``finetune``), evaluate on dev and write the folder; ``inputs`` as in
    :func:`~pruneofa.training.engine.finish`."""
    from transformers import DataCollatorWithPadding

    auto_class, labels = task_head_options(spec)
    source, student, _ = load_model(model, auto_class, allow_new_head=True, what="model", **labels)
    tokenizer = modelio.load_tokenizer(source)
    teacher = None
    if teacher_dir is not None:
        _, teacher, _ = load_model(teacher_dir, auto_class, allow_new_head=False, what="teacher")
    dataset = train_dataset(spec, data, tokenizer, config)
    callbacks, initial_zeros = [], {}
    if stage == "finetune" and config.learning_rate is None:
        config = config.model_copy(update={"learning_rate": TRANSFER_LR})
    if stage == "finetune":
        initial_zeros = zero_patterns(student, recipe.pruning if recipe else None)
        lock_sparsity(student, recipe.pruning if recipe else None)
        callbacks.append(SparsityLogCallback(recipe.pruning if recipe else None))
    run = run_training(
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
        default_lr=TASK_TEACHER_LR,
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
    return finish(
        stage=stage,
        kind="task-teacher" if stage == "teacher" else "finetune",
        model=trained,
        tokenizer=tokenizer,
        source=source,
        output=output,
        inputs=inputs,
        config=config,
        info=info,
        metrics=metrics,
        recipe=recipe,
        command=command,
        checkpoints=run.checkpoints,
    )


def prune(
    model: str,
    config: TrainConfig,
    *,
    teacher: str,
    corpus: str | Sequence[str],
    recipe: str | Path,
    command: list[str] | None = None,
) -> TrainResult:
    """Prune a pre-trained model during masked-LM training with distillation from ``teacher``; the
    checkpoint's pooler, where it has one, is kept and pruned with the encoder (as in the paper)."""
    from transformers import set_seed

    plan = load_recipe(recipe)
    if plan.schedule is None:
        raise InputError(
            f"recipe {plan.name} has no schedule; 'pruneofa prune' needs one (see training/recipes)"
        )
    schedule = plan.schedule.at(config.steps)
    # A family without a known layer layout (ALBERT's shared layers, DeBERTa's fused Q/K/V, ...) is refused
    # in one line before any model is loaded; export, calibrate and validate still take it.
    named = modelio.resolve_model_source(model)
    modelio.layout_spec(modelio.load_config(named), "prune")
    inputs = stage_inputs(model, teacher, corpus, recipe)
    output = default_output(config, named.display_name, "pruned", inputs=inputs)
    set_seed(config.seed)
    source, student, _ = load_model(
        model, "AutoModelForMaskedLM", allow_new_head=False, what="model", keep_pooler=True
    )
    _, teacher_model, _ = load_model(
        teacher, "AutoModelForMaskedLM", allow_new_head=False, what="teacher", keep_pooler=True
    )
    tokenizer = modelio.load_tokenizer(source)
    pruned_layers = apply_pruning(student, plan.pruning)
    if plan.pruning.pattern == "block":
        rows, cols = plan.pruning.block_shape
        for layer in pruned_layers:
            shape = tuple(layer.module.weight.shape)
            if shape[0] % rows or shape[1] % cols:
                raise InputError(
                    f"recipe {plan.name}: block_shape {rows}x{cols} does not divide {layer.name} "
                    f"(weight {shape[0]}x{shape[1]}); choose a block shape that divides every pruned layer"
                )
    dataset = mlm_blocks(
        corpus, tokenizer, seq_len=config.seq_len, limit=config.train_limit, seed=config.seed
    )
    run = run_training(
        kind="prune",
        model=student,
        tokenizer=tokenizer,
        dataset=dataset,
        collator=mlm_collator(tokenizer, config),
        teacher=teacher_model,
        distill_kind="masked-lm",
        distillation=plan.distillation,
        callbacks=[PruningCallback(plan.pruning, schedule)],
        config=config,
        output=output,
        recipe=plan,
        default_lr=plan.optimizer.learning_rate,
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
        # masks prune a whole number of blocks (1 weight for unstructured): half a block of rounding, plus one
        block = (
            plan.pruning.block_shape[0] * plan.pruning.block_shape[1]
            if plan.pruning.pattern == "block"
            else 1
        )
        for name, value in achieved.items():
            numel = dict(pruned.named_modules())[name].weight.numel()
            if (
                abs(value - schedule.final_sparsity) > (block / 2 + 1) / numel
                and plan.pruning.scope == "uniform"
            ):
                raise CheckFailed(
                    f"{name} ended at {value:.4f} sparsity, not the recipe's {schedule.final_sparsity}"
                )
    info = run.info(
        config,
        task="mlm",
        data=corpus_label(corpus),
        teacher=str(teacher),
        recipe=plan.name,
        layer_sparsity={k: round(v, 6) for k, v in sparsity_by_module(pruned).items()},
    )
    return finish(
        stage="prune",
        kind="prune",
        model=pruned,
        tokenizer=tokenizer,
        source=source,
        output=output,
        inputs=inputs,
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
    inputs = stage_inputs(model, data, teacher, recipe)
    output = default_output(
        config, modelio.resolve_model_source(model).display_name, spec.name, inputs=inputs
    )
    return train_task(
        model,
        spec,
        data,
        config,
        output=output,
        inputs=inputs,
        teacher_dir=teacher,
        recipe=plan,
        command=command,
        stage="finetune",
    )
