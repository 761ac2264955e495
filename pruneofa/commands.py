"""The front's own commands, which compose several components: ``qat`` (train with
:mod:`pruneofa.training`, export with :mod:`pruneofa.exporter`, check with :mod:`pruneofa.deploy`),
``run`` (a run recipe of pruneofa commands) and ``info`` (what a folder's manifest says)."""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pruneofa.core.cliargs import Command, add_config_arguments, command_line, config_from_args
from pruneofa.training.cli import GLUE_TASKS, add_budget_arguments, train_config


class QATExportOptions(BaseModel):
    """What ``pruneofa qat`` does after training."""

    model_config = ConfigDict(extra="forbid")

    export: list[Literal["openvino", "onnx"]] = Field(
        default_factory=lambda: ["openvino"],
        description="export the QAT model to these targets after training, into OUTPUT-TARGET",
        json_schema_extra={"cli": {"metavar": "TARGETS"}},
    )
    no_export: bool = Field(False, description="only train and save the QAT model")


def add_qat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="SPARSE_TASK_MODEL",
        help="fine-tuned sparse task model (or sparse pre-trained model)",
    )
    parser.add_argument("--task", required=True, help=GLUE_TASKS)
    parser.add_argument("--data", required=True, help="hub dataset id, GLUE folder or file, SQuAD JSON")
    parser.add_argument("--teacher", help="dense task teacher folder (distillation); omit to train without")
    parser.add_argument(
        "--recipe", help="recipe with the transfer and qat stages (default: the built-in qat-two-stage)"
    )
    add_config_arguments(parser, QATExportOptions)
    add_budget_arguments(parser, skip=("mlm_probability",))


def run_qat(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pruneofa.core.fsutil import check_output_dir
    from pruneofa.core.manifest import read_manifest
    from pruneofa.core.modelio import resolve_model_source
    from pruneofa.recipe_runner import same_work
    from pruneofa.training.qat import qat

    config = train_config(args)
    after = config_from_args(QATExportOptions, args)
    name = resolve_model_source(args.model).display_name
    planned = config.output or Path("runs") / f"{name}-{args.task}-qat"
    done = read_manifest(planned) if (planned / "pruneofa.json").is_file() and not config.overwrite else None
    if done is not None and done.stage == "qat" and same_work(done.command[1:], args.argv):
        # The same QAT run finished before (e.g. the export after it was interrupted): export only.
        print(f"pruneofa qat: {planned} already holds this QAT run; exporting it", file=sys.stderr)
        output, manifest = planned, done
    else:
        if not after.no_export:  # fail before training, not after, when an export folder is in the way
            for target in after.export:
                check_output_dir(
                    Path(f"{planned}-{target}"),
                    overwrite=config.overwrite,
                    inputs=[args.model, args.data, args.teacher, args.recipe],
                )
        result = qat(
            args.model,
            config,
            task=args.task,
            data=args.data,
            teacher=args.teacher,
            recipe=args.recipe,
            command=command_line(args),
        )
        output, manifest = result.output, result.manifest
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in manifest.metrics.items())
    print(f"QAT model written to {output}; dev {metrics} (PyTorch, fake-quantized)")
    if after.no_export:
        return 0
    from pruneofa.deploy.config import validate_config
    from pruneofa.deploy.validation import format_report, validate_model
    from pruneofa.exporter import export_model, make_config

    passed = True
    for target in after.export:
        exported = Path(f"{output}-{target}")
        export_model(
            str(output),
            make_config(targets=[target], output=exported, overwrite=config.overwrite),
            command=[*command_line(args), f"(export {target})"],
        )
        # The INT8 model against the PyTorch QAT model on the dev data: the collapse some INT8 exports
        # suffer on CPUs without VNNI shows here as a metric drop, not only as disagreeing logits.
        check = validate_model(
            str(exported),
            validate_config(
                reference=str(output),
                data=args.data,
                task=args.task,
                limit=config.eval_limit,
                report=Path(f"{exported}.validation.json"),
            ),
        )
        print(format_report(check))
        passed = passed and check.passed
    return 0 if passed else 1


class RunOptions(BaseModel):
    """Options of ``pruneofa run``."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="run recipe: a YAML file or a built-in name")
    output: str | None = Field(
        None, description="output root", json_schema_extra={"cli": {"default_text": "the recipe's output"}}
    )
    data_root: str | None = Field(
        None,
        description="read the recipe's data sources from their local copies under DIR (and replace {data}) "
        "instead of the Hugging Face hub",
        json_schema_extra={"cli": {"default_text": "the recipe's data_root, else the hub", "metavar": "DIR"}},
    )
    steps_scale: float = Field(
        1.0,
        gt=0,
        le=10,
        description="multiply every stage's steps (at least 2), save/logging steps (at least 1) and "
        "calibrate's samples (at least 16); below 1 (a rehearsal) a training stage also saves at most two "
        "checkpoints and every dev-set evaluation is scaled (at least 64 examples); 0.01 rehearses every "
        "stage at 1 %% of its steps. A scaled run writes OUTPUT-steps-xFACTOR unless --output is given",
        json_schema_extra={"cli": {"metavar": "FACTOR"}},
    )
    dry_run: bool = Field(False, description="print the stage commands and stop")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, RunOptions)


def run_recipe(args: argparse.Namespace) -> int:
    import contextlib
    import io
    from pathlib import Path

    from pruneofa.cli import build_parser, main
    from pruneofa.core.errors import InputError
    from pruneofa.recipe_runner import load_run_recipe, run_recipe, summary_table

    options = config_from_args(RunOptions, args)

    def check(argv: list[str]) -> None:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                build_parser().parse_args(argv)
        except SystemExit as exc:
            message = errors.getvalue().strip().splitlines()[-1:] or ["invalid command line"]
            raise InputError(f"stage '{' '.join(argv[:2])}': {message[0]}") from exc

    recipe = load_run_recipe(options.recipe)
    output = Path(options.output) if options.output else None
    if output is None and options.steps_scale != 1:  # a rehearsal does not occupy the real run's folder
        output = Path(f"{recipe.output}-steps-x{options.steps_scale:g}")
    outcomes = run_recipe(
        recipe,
        main,
        check,
        output=output,
        data_root=options.data_root,
        dry_run=options.dry_run,
        steps_scale=options.steps_scale,
    )
    if not options.dry_run:
        print(summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    return failed[0].exit_code if failed else 0


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="a folder written by a pruneofa command")
    parser.add_argument(
        "--per-tensor", action="store_true", help="list every weight matrix, not only per layer"
    )


def run_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pruneofa.core.errors import InputError
    from pruneofa.core.manifest import read_manifest
    from pruneofa.core.report import describe

    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give a folder written by a pruneofa command")
    manifest = read_manifest(folder)
    if manifest is not None:
        print(describe(str(folder), manifest, per_tensor=args.per_tensor))
        return 0
    # The parent of a several-target export (OUTPUT/openvino, OUTPUT/onnx): describe each target.
    children = [(child, read_manifest(child)) for child in sorted(folder.iterdir()) if child.is_dir()]
    children = [(child, found) for child, found in children if found is not None]
    if not children:
        raise InputError(
            f"{folder} has no pruneofa.json, nor any sub-folder with one; it was not written by pruneofa"
        )
    print(f"{folder}: {len(children)} folders written by pruneofa: " + ", ".join(c.name for c, _ in children))
    for child, found in children:
        print()
        print(describe(str(child), found, per_tensor=args.per_tensor))
    return 0


def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    from pruneofa.quickstart import QuickstartOptions

    add_config_arguments(parser, QuickstartOptions)
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def run_quickstart(args: argparse.Namespace) -> int:
    from pruneofa.quickstart import QuickstartOptions, quickstart

    quickstart(config_from_args(QuickstartOptions, args), quiet=args.quiet)
    return 0


COMMANDS = (
    Command(
        name="quickstart",
        help="what pruneofa is for, in minutes: the embedded MiniLM dense vs sparse on this CPU (speed, size, fidelity)",
        description="Export the embedded all-MiniLM-L6-v2 and a sparse twin (one-shot magnitude pruning, no "
        "retraining) to OpenVINO, benchmark both on this CPU (the sparse one with and without pruneofa's sparse "
        "kernels), compare their sentence embeddings on the packaged sentences, and write a side-by-side summary "
        "(summary.md, summary.png). Uses only the embedded model and packaged data.",
        epilog="example:\n  pruneofa quickstart --overwrite\n"
        f"then the method for real: {'pruneofa run --recipe pipeline-small'}",
        add_arguments=add_quickstart_arguments,
        run=run_quickstart,
    ),
    Command(
        name="qat",
        help="quantization-aware training (NNCF) of a sparse task model, pattern locked, then INT8 export",
        description="NNCF quantization-aware training with the sparsity pattern locked and distillation from the "
        "dense task teacher (stage 2 of the two-stage recipe; stage 1, sparse transfer, runs first when the input "
        "is a sparse pre-trained model rather than a task model). The QAT model is saved so that it can be "
        "reloaded, then exported to OpenVINO IR with INT8 weights (and ONNX with QDQ) with sparsity accounting "
        "and output parity against the PyTorch QAT model.",
        epilog="example:\n  pruneofa qat runs/minilm-90-sst2 --task sst2 --data ../shared/data/glue/SST-2 "
        "--teacher runs/teacher-sst2 --steps 300 --output runs/minilm-90-sst2-qat\n"
        "  (writes runs/minilm-90-sst2-qat and runs/minilm-90-sst2-qat-openvino)",
        add_arguments=add_qat_arguments,
        run=run_qat,
    ),
    Command(
        name="run",
        help="run the whole method from a run recipe: teacher → prune → finetune → qat → export → calibrate → validate",
        description="Run the stages a run recipe lists, each one pruneofa command writing OUTPUT/STAGE. Stages "
        "whose output is already complete are skipped, interrupted training resumes from its checkpoints, and every "
        "stage's command line is checked before any work starts. Ends with a summary table (also OUTPUT/summary.md).",
        epilog="examples:\n  pruneofa run --recipe pipeline-small --dry-run\n"
        "  pruneofa run --recipe pipeline-small --steps-scale 0.01   # a rehearsal at 1 % of the steps\n"
        "  pruneofa run --recipe pipeline-small --output runs/small\n"
        "  pruneofa run --recipe my-recipe.yaml --data-root /data\n"
        "built-in recipes (pruneofa/run_recipes/): pipeline-small (MiniLM, data from the hub or --data-root, "
        "hours on a 2-core CPU), pipeline-bert-base (the paper's scale, for GPUs)",
        add_arguments=add_run_arguments,
        run=run_recipe,
    ),
    Command(
        name="info",
        help="print the report stored in a folder's pruneofa.json (sparsity, parity, shrink, files)",
        description="Print what produced a pruneofa folder and the checks recorded in its pruneofa.json.",
        add_arguments=add_info_arguments,
        run=run_info,
    ),
)
