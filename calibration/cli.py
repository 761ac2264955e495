"""``pruneofa calibrate``: calibration's command definition (flags generated from :class:`CalibrateConfig`)."""

from __future__ import annotations

import argparse

from pruneofa.calibration.config import CalibrateConfig
from pruneofa.core.cliargs import Command, add_config_arguments, command_line, config_from_args

EXAMPLES = """\
examples:
  pruneofa calibrate exports/sst2-ov --task sst2 --data ../shared/data/glue/SST-2
  pruneofa calibrate exports/sst2-onnx --task sst2 --data nyu-mll/glue --method entropy --per-channel
  pruneofa calibrate exports/sst2-ov --task sst2 --data ./SST-2 --max-drop 1.0 --eval-data ./SST-2
  pruneofa calibrate exports/minilm-onnx     # ONNX without data: dynamic quantization

--method auto (the default) on ONNX: static QDQ (minmax) on the samples, then dynamic quantization if
static fails parity (one line says so); without --task/--data, dynamic straight away. OpenVINO
calibrates with NNCF and needs --task and --data.

exit codes: 0 quantized and checked; 1 a check failed (nothing written); 2 bad input (nothing written)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exported", metavar="EXPORTED_DIR", help="a folder written by 'pruneofa export'")
    add_config_arguments(parser, CalibrateConfig)
    parser.add_argument("--quiet", action="store_true", help="print only errors")


def run(args: argparse.Namespace) -> int:
    from pruneofa.calibration.api import calibrate_model

    config = config_from_args(CalibrateConfig, args)
    calibrate_model(args.exported, config, command=command_line(args), quiet=args.quiet)
    return 0


COMMANDS = (
    Command(
        name="calibrate",
        help="quantize an exported folder to INT8 (NNCF for OpenVINO, ONNX Runtime for ONNX), sparsity and parity checked",
        description="Quantize an FP32 folder written by 'pruneofa export' to INT8. Weights are quantized "
        "symmetrically, so every pruned weight stays exactly zero (checked); on CPUs without VNNI/AMX weights "
        "get 7 bits against int16 saturation (NNCF overflow fix / ONNX Runtime reduce_range). The INT8 model is "
        "compared with the FP32 export by the measure that fits its task (labels; answer spans; embedding "
        "cosine and nearest neighbours; top-k tokens), and with --max-drop its metric drop is measured after "
        "accuracy control and held to the limit; the folder is written only when every check passes.",
        epilog=EXAMPLES,
        add_arguments=add_arguments,
        run=run,
    ),
)
