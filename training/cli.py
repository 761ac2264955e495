"""``pruneofa teacher | prune | finetune``: training's command definitions. The budget flags are generated
from :class:`TrainConfig`; the method lives in the recipe."""

from __future__ import annotations

import argparse

from pruneofa.core.cliargs import Command, add_config_arguments, command_line, config_from_args
from pruneofa.core.errors import InputError
from pruneofa.training import preflight
from pruneofa.training.config import HeadWarmupOptions, TrainConfig

GLUE_TASKS = "cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli, squad"
CORPUS_HELP = (
    "text corpus: a .txt/.raw file, a folder of them, or a hub dataset id; several sources comma-separated "
    "or by repeating --corpus are mixed in proportion to their size"
)


def add_budget_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The training budget (the :class:`TrainConfig` fields, less ``skip``: those that do nothing for the
    command, such as ``--stride`` where no SQuAD data is read), shared by every training command."""
    add_config_arguments(parser.add_argument_group("training budget"), TrainConfig, skip=skip)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return config_from_args(TrainConfig, args)


def add_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", nargs="?", default=None, metavar="MODEL", help="model folder or hub id (default: MiniLM)"
    )
    parser.add_argument("--corpus", action="append", help=CORPUS_HELP + " (masked-LM teacher)")
    parser.add_argument("--task", help=f"task of a task teacher ({GLUE_TASKS})")
    parser.add_argument("--data", help="task data for --task")
    add_config_arguments(parser, HeadWarmupOptions)
    add_budget_arguments(parser)


def run_teacher(args: argparse.Namespace) -> int:
    preflight.check_model(args.model)
    if args.corpus is None and args.task is None:
        raise InputError("give either --corpus (masked-LM teacher) or --task with --data (task teacher)")
    preflight.check_sources(args.corpus, "--corpus")
    preflight.check_task(args.task, args.data)
    preflight.check_sources(args.data, "--data")
    from pruneofa.training.stages import prepare_teacher

    result = prepare_teacher(
        args.model,
        train_config(args),
        corpus=args.corpus,
        task=args.task,
        data=args.data,
        command=command_line(args),
        **config_from_args(HeadWarmupOptions, args).model_dump(),
    )
    print(f"teacher written to {result.output}")
    return 0


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="the dense model to prune (usually the MLM teacher)")
    parser.add_argument("--teacher", required=True, help="the dense MLM teacher folder")
    parser.add_argument("--corpus", required=True, action="append", help=CORPUS_HELP)
    parser.add_argument(
        "--recipe",
        required=True,
        help="recipe YAML or built-in name: "
        + ", ".join(preflight.builtin_recipes("schedule"))
        + " (docs/training.md: the -fast ones trade the paper's logit KL for hidden-state distillation)",
    )
    add_budget_arguments(parser, skip=("stride",))


def run_prune(args: argparse.Namespace) -> int:
    preflight.check_recipe(args.recipe, "prune", "schedule")
    preflight.check_model(args.model)
    preflight.check_model(args.teacher, "--teacher")
    preflight.check_sources(args.corpus, "--corpus")
    from pruneofa.training.stages import prune

    result = prune(
        args.model,
        train_config(args),
        teacher=args.teacher,
        corpus=args.corpus,
        recipe=args.recipe,
        command=command_line(args),
    )
    training = result.manifest.training
    values = list(training.layer_sparsity.values()) if training is not None else []
    mean = sum(values) / max(len(values), 1)
    print(f"sparse model written to {result.output} (mean Linear sparsity {mean:.2%})")
    return 0


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="SPARSE_MODEL", help="the sparse pre-trained model folder")
    parser.add_argument("--task", required=True, help=GLUE_TASKS)
    parser.add_argument("--data", required=True, help="hub dataset id, GLUE folder or file, SQuAD JSON")
    parser.add_argument("--teacher", help="dense task teacher folder (distillation); omit to train without")
    parser.add_argument("--recipe", help="recipe for distillation/optimizer settings (default: T=2, 0.5/0.5)")
    add_budget_arguments(parser, skip=("mlm_probability",))


def run_finetune(args: argparse.Namespace) -> int:
    preflight.check_recipe(args.recipe, "finetune")
    preflight.check_model(args.model, "SPARSE_MODEL")
    if args.teacher is not None:
        preflight.check_model(args.teacher, "--teacher")
    preflight.check_task(args.task, args.data)
    preflight.check_sources(args.data, "--data")
    from pruneofa.training.stages import finetune

    result = finetune(
        args.model,
        train_config(args),
        task=args.task,
        data=args.data,
        teacher=args.teacher,
        recipe=args.recipe,
        command=command_line(args),
    )
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result.manifest.metrics.items())
    print(f"fine-tuned model written to {result.output}; dev {metrics}")
    return 0


COMMANDS = (
    Command(
        name="teacher",
        help="teacher preparation: continue masked-LM training on a corpus, or fine-tune a dense task teacher",
        description="Continue masked-LM training of a dense model on a text corpus (an MLM head tied to the word "
        "embeddings is added where the checkpoint has none, and first trained alone with the encoder frozen), "
        "or fine-tune a dense task teacher (--task, --data).",
        epilog="examples:\n  pruneofa teacher --corpus Salesforce/wikitext --steps 300 "
        "--output runs/teacher-mlm\n"
        "  pruneofa teacher --task sst2 --data nyu-mll/glue --steps 500 --output runs/teacher-sst2",
        add_arguments=add_teacher_arguments,
        run=run_teacher,
    ),
    Command(
        name="prune",
        help="prune once, at pre-training: masked-LM + distillation with the recipe's cubic schedule",
        description="Gradual magnitude pruning of the student during masked-LM training with distillation from "
        "the teacher (loss = a_task*MLM + a_kd*T^2*KL over all non-padding tokens). Masks are baked in at the end.",
        epilog="example:\n  pruneofa prune runs/teacher-mlm --teacher runs/teacher-mlm --corpus Salesforce/wikitext "
        "--recipe pruneofa-90 --steps 600 --output runs/minilm-90",
        add_arguments=add_prune_arguments,
        run=run_prune,
    ),
    Command(
        name="finetune",
        help="sparse transfer: fine-tune a sparse model on a task with the pattern locked, distilling a teacher",
        description="Fine-tune a sparse pre-trained model on a GLUE task or SQuAD with its sparsity pattern "
        "locked (mask = weight != 0; pruned weights never regrow), distilling the dense task teacher; evaluates "
        "on dev.",
        epilog="example:\n  pruneofa finetune runs/minilm-90 --task sst2 --data nyu-mll/glue "
        "--teacher runs/teacher-sst2 --steps 500 --output runs/minilm-90-sst2",
        add_arguments=add_finetune_arguments,
        run=run_finetune,
    ),
)
