"""The public training engine every training command runs on: load → run → finish.

- :func:`load_model` opens a checkpoint with a transformers auto class, refusing missing weights except
  a new task/MLM head where one may be added;
- :func:`run_training` runs ``transformers.Trainer`` (with distillation and the callbacks a command
  gives), resuming from the last checkpoint in ``.<output>.checkpoints`` beside the output;
- :func:`finish` writes the output folder atomically with the model, tokenizer, recipe and
  ``pruneofa.json``, then drops the checkpoints.

The commands (:mod:`pruneofa.training.stages`, :mod:`pruneofa.training.qat`) are compositions of these.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pruneofa.core import modelio
from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import Inputs, atomic_output_dir, check_output_dir
from pruneofa.core.manifest import (
    Manifest,
    SourceInfo,
    TrainingInfo,
    TrainingKind,
    hash_model_files,
    library_versions,
    now_utc,
    read_manifest,
    write_manifest,
)
from pruneofa.core.modelio import hf_base_model, hf_config
from pruneofa.core.tasks import TaskSpec
from pruneofa.training.config import TrainConfig
from pruneofa.training.datasets import qa_dataset, task_dataset
from pruneofa.training.distill import DistillationConfig
from pruneofa.training.progress import install_step_progress
from pruneofa.training.recipe import Recipe, dump_recipe
from pruneofa.training.trainer import DistillationTrainer

# Weights a task or MLM head may add (new, trained from scratch); anything else missing is an error.
NEW_HEAD = re.compile(r"(^|\.)(classifier|qa_outputs|pre_classifier|pooler|cls|vocab_\w+|lm_head)\.")


@dataclass
class RunOutcome:
    """What a Trainer run left: the trainer (model, state), timings, the loss curve and where checkpoints are."""

    trainer: Any
    wall_time_s: float
    step_time_s: float
    loss_curve: list[dict[str, float]]
    checkpoints: Path

    def info(self, config: TrainConfig, **fields: Any) -> dict[str, Any]:
        """The fields of :class:`~pruneofa.core.manifest.TrainingInfo` every stage shares, plus ``fields``."""
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


def load_model(
    location: str | None,
    auto_class: str,
    *,
    allow_new_head: bool,
    what: str,
    keep_pooler: bool = False,
    **kwargs: Any,
):
    """Open ``location`` with ``transformers.<auto_class>``; ``keep_pooler`` carries the checkpoint's
    pre-trained pooler into a masked-LM model (see :func:`carry_pooler`)."""
    import transformers

    source = modelio.resolve_model_source(location)
    modelio.refuse_qat_folder(source)
    config = modelio.load_config(source)
    modelio.architecture_spec(config)
    model, info = getattr(transformers, auto_class).from_pretrained(
        source.location, output_loading_info=True, weights_only=True, trust_remote_code=False, **kwargs
    )
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    unexpected_missing = [k for k in missing if not NEW_HEAD.search(k)] if allow_new_head else missing
    if unexpected_missing:
        raise InputError(
            f"{what} {source.location} lacks {len(unexpected_missing)} weights (e.g. {unexpected_missing[0]})"
        )
    if keep_pooler:
        carry_pooler(model, source.location)
    return source, model, missing


def carry_pooler(model: torch.nn.Module, location: str) -> bool:
    """Give a masked-LM model the pre-trained pooler its checkpoint holds.

    transformers builds ``BertForMaskedLM`` / ``RobertaForMaskedLM`` without a pooler, so a pooler in the
    checkpoint is dropped on loading: never pruned, and sparse transfer starts from a random dense one.
    The paper prunes it with the encoder (the reference trains ``BertForPreTraining``, whose NSP head sits
    on the pooler). Here the pooler is attached to the masked-LM model's base, where the pruning scope
    selects it and ``save_pretrained`` writes it (``bert.pooler.*``), so every later stage loads it.
    Returns whether a pooler was attached (not when the model has one already, none is defined for the
    architecture, or the checkpoint has no pooler weights)."""
    import transformers

    base = hf_base_model(model)
    if not hasattr(base, "pooler") or base.pooler is not None:
        return False
    plain, info = transformers.AutoModel.from_pretrained(
        location, output_loading_info=True, weights_only=True, trust_remote_code=False
    )
    pooler = getattr(plain, "pooler", None)
    if pooler is None or any(".pooler." in f".{key}" for key in info.get("missing_keys", [])):
        return False
    base.pooler = pooler.to(next(base.parameters()).dtype)
    return True


def trainer_arguments(config: TrainConfig, checkpoints: Path, recipe: Recipe | None, default_lr: float):
    from transformers import TrainingArguments

    optimizer = recipe.optimizer if recipe is not None else None
    # torchrun/accelerate on CPUs: the Trainer joins the process group (and wraps the model in DDP) only
    # with use_cpu and a CPU backend named; with the backend alone every rank trained its own model and
    # rank 0's was written (caught by check_same_pattern_on_every_rank).
    distributed_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return TrainingArguments(
        use_cpu=distributed_cpu,
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


def run_training(
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
        args=trainer_arguments(config, checkpoints, recipe, default_lr),
        train_dataset=dataset,
        data_collator=collator,
        callbacks=callbacks,
        teacher=teacher,
        distillation=distillation,
        kind=distill_kind,
        lr_factor=lr_factor,
    )
    install_step_progress(trainer, kind)
    last = get_last_checkpoint(str(checkpoints))
    if last:
        print(f"pruneofa {kind}: resuming from {last}", file=sys.stderr)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - started
    if trainer.args.world_size > 1:
        check_same_pattern_on_every_rank(trainer, kind)
    # Every rank writes its own part of the last checkpoint (its RNG state); wait for all of them before
    # rank 0 writes the output and removes the checkpoints, or a slower rank writes into a deleted folder.
    trainer.accelerator.wait_for_everyone()
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


def finish(
    *,
    stage: str,
    kind: TrainingKind,
    model: Any,  # a transformers model (save_pretrained)
    tokenizer: Any,
    source: Any,
    output: Path,
    inputs: Inputs,
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
    tokenizer, recipe and ``pruneofa.json``; then drop the checkpoints. ``inputs``: what the stage read
    (model, teacher, data, recipe), which the output may not be, contain or lie inside."""
    parent = read_manifest(source.path) if source.local else None
    with atomic_output_dir(output, overwrite=config.overwrite, inputs=inputs) as staging:
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
                model_type=hf_config(model).model_type,
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


def default_output(config: TrainConfig, name: str, stage: str, *, inputs: Inputs) -> Path:
    """``--output`` or ``runs/NAME-STAGE``, checked before training (see :func:`check_output_dir`)."""
    output = config.output or Path("runs") / f"{name}-{stage}"
    return check_output_dir(output, overwrite=config.overwrite, inputs=inputs)


def stage_inputs(*items: str | Path | Sequence[str] | None) -> list[str | Path]:
    """The local inputs a stage names (model, teacher, data, corpus sources, recipe) as one flat list."""
    flat: list[str | Path] = []
    for item in items:
        if item is None:
            continue
        flat.extend([item] if isinstance(item, str | Path) else item)
    return flat


def check_same_pattern_on_every_rank(trainer: Any, kind: str) -> str:
    """Under torchrun every rank prunes its own replica from its own gradients' effect on the weights;
    DDP keeps the weights equal, so the masks must be too. Checked, not assumed: a rank that diverged
    (a non-deterministic op, a mask computed from a rank-local statistic) would otherwise leave rank 0's
    pattern in the output while the others trained against different ones. Returns the digest."""
    import hashlib

    import torch.distributed as dist

    from pruneofa.training.masks import pattern_digests

    mine = pattern_digests(getattr(trainer.model, "module", trainer.model))
    everyone: list[dict[str, str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    differ = [name for name in mine if len({str((d or {}).get(name)) for d in everyone}) > 1]
    if differ:
        raise RuntimeError(
            f"the {len(everyone)} ranks ended with different sparsity patterns in {len(differ)} layers "
            f"(first {differ[0]}); this is a bug, please report it with the command"
        )
    digest = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(mine.items())).encode()).hexdigest()
    if trainer.is_world_process_zero():
        print(
            f"pruneofa {kind}: the same sparsity pattern on all {len(everyone)} ranks (sha256 {digest[:16]})"
        )
    return digest


def mlm_collator(tokenizer: Any, config: TrainConfig):
    """transformers' masked-LM collator, masking each batch with a generator seeded by ``config.seed`` and
    the batch's own token ids instead of a running random state.

    Why: a run resumed from a checkpoint must mask every batch exactly as the uninterrupted run did. The
    collator's own seeded generator restarts from the seed on resume (its state is not checkpointed), and
    without it the global RNG is restored by the Trainer only after the first resumed batch was collated;
    either way the resumed run trained on different masks. Seeding from the content is stateless, so the
    same batch gets the same masks in every run and on every rank, and batches still differ from each other
    (and from epoch to epoch, where the shuffled batches differ)."""
    import hashlib

    import torch
    from transformers import DataCollatorForLanguageModeling

    class ContentSeededMLMCollator(DataCollatorForLanguageModeling):
        def torch_mask_tokens(self, inputs: Any, special_tokens_mask: Any = None, offset_mapping: Any = None):
            key = int(config.seed).to_bytes(8, "little", signed=True)
            digest = hashlib.blake2b(inputs.numpy().tobytes(), digest_size=8, key=key).digest()
            self.generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
            return super().torch_mask_tokens(
                inputs, special_tokens_mask=special_tokens_mask, offset_mapping=offset_mapping
            )

    return ContentSeededMLMCollator(tokenizer, mlm_probability=config.mlm_probability)


def task_head_options(spec: TaskSpec) -> tuple[str, dict[str, Any]]:
    """The transformers auto class of ``spec``'s head and the config options it needs."""
    from pruneofa.core.support import EXPORT_TASKS

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


def load_dev(spec: TaskSpec, data: str, config: TrainConfig) -> list:
    from pruneofa.core.data import load_examples

    return load_examples(spec, data, split="dev", limit=config.eval_limit)
