"""``pruneofa validate | benchmark | serve | package``: deployment's command definitions, flags generated
from the configs in :mod:`pruneofa.deploy.config`."""

from __future__ import annotations

import argparse
import json

from pruneofa.core.cliargs import Command, add_config_arguments, command_line, config_from_args
from pruneofa.deploy.config import BenchmarkConfig, PackageConfig, ServeConfig, ValidateConfig

VALIDATE_EXAMPLES = """\
examples:
  pruneofa validate exports/sst2-ov-int8 --reference ./sst2-model --data ../shared/data/glue/SST-2 --task sst2
  pruneofa validate exports/squad-onnx --reference exports/squad-ov --data dev-v1.1.json --task squad --limit 500
  pruneofa validate exports/sst2-ov-int8 --reference ./sst2-model --data nyu-mll/glue --task sst2 \\
      --max-drop 1.0 --report gate.json --junit gate.xml
  pruneofa validate exports/sst2-ov-int8 --reference ./sst2-model --data my-dev.csv --task sst2 \\
      --slice-by source --max-class-drop 3 --max-ece-increase 2 --html behaviour.html

exit codes: 0 within bounds; 1 outside bounds; 2 bad input
"""

BENCHMARK_EXAMPLES = """\
examples:
  pruneofa benchmark exports/sst2-ov-int8                        # vs PyTorch, ONNX Runtime, optimum-intel INT8
  pruneofa benchmark exports/minilm-ov exports/minilm-ov-int8 --batch 1,16 --seq 128 --duration 30
  pruneofa benchmark exports/sst2-onnx --vs torch --batch 1 --duration 5 --output bench-out/quick

exit codes: 0 measured (peers that cannot be built are reported, not fatal); 2 bad input
"""

SERVE_EXAMPLES = """\
exit codes: 0 stopped after answering every accepted request; 1 some were dropped at shutdown; 2 bad input

examples:
  pruneofa serve exports/sst2-ov-int8 --name sst2-ov-int8   # default: from pruneofa.json, printed at start
  pruneofa serve exports/squad-onnx --host 0.0.0.0 --port 9000 --max-batch 8 --max-queue 128
  curl -s localhost:8000/predict -d '{"inputs": ["a delight", "a bore"]}'
  curl -s localhost:8000/v2/models/sst2-ov-int8/infer \\
       -d '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a delight"]}]}'
"""

PACKAGE_EXAMPLES = """\
examples:
  pruneofa package exports/sst2-ov-int8 --format ovms --output repo/ovms      # docker: --config_path /models/config.json
  pruneofa package exports/sst2-ov-int8 --format ovms --name sst2 --output repo/ovms-sst2   # name in the v2 URLs
  pruneofa package exports/sst2-onnx --format triton --output repo/triton     # tritonserver --model-repository
  pruneofa package exports/sst2-ov-int8 --format archive --output dist/sst2 --name sst2
  pruneofa package dist/sst2/sst2.tar.xz --format folder --output exports/sst2-restored

exit codes: 0 written; 2 bad input, or a model that is not the one its pruneofa.json describes or fails when
run once (nothing written)
"""


def _quiet_flag(parser: argparse.ArgumentParser, help: str = "print only errors") -> None:
    parser.add_argument("--quiet", action="store_true", help=help)


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "candidate", metavar="CANDIDATE", help="an exported folder (or any model pruneofa can open)"
    )
    add_config_arguments(parser, ValidateConfig)
    _quiet_flag(parser, "no progress bar")


def run_validate(args: argparse.Namespace) -> int:
    from pruneofa.deploy.validation import format_report, validate_model

    report = validate_model(args.candidate, config_from_args(ValidateConfig, args), quiet=args.quiet)
    print(format_report(report))
    return 0 if report.passed else 1


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="exported or calibrated folder(s)")
    add_config_arguments(parser, BenchmarkConfig)
    _quiet_flag(parser, "print only the table")


def run_benchmark(args: argparse.Namespace) -> int:
    from pruneofa.deploy.benchmarking.measurement import passive_openmp

    passive_openmp()  # before PyTorch is imported (benchmark_model prints what it did)
    from pruneofa.deploy.benchmarking import benchmark_model, markdown_table

    config = config_from_args(BenchmarkConfig, args)
    report = benchmark_model(args.folders, config, command=command_line(args), quiet=args.quiet)
    print(markdown_table(report))
    return 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="an exported or calibrated folder")
    add_config_arguments(parser, ServeConfig)
    _quiet_flag(parser, "no start-up lines")


def run_serve(args: argparse.Namespace) -> int:
    from pruneofa.deploy.serve import serve

    return serve(args.folder, config_from_args(ServeConfig, args), quiet=args.quiet)


def add_package_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", metavar="FOLDER", help="an exported folder (or, with --format folder, an archive)"
    )
    add_config_arguments(parser, PackageConfig)
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON on stdout (for scripts)"
    )
    _quiet_flag(parser)


def run_package(args: argparse.Namespace) -> int:
    from pruneofa.deploy.packaging import package_model

    config = config_from_args(PackageConfig, args)
    result = package_model(args.folder, config, command=command_line(args), quiet=args.quiet)
    summary = {"output": str(result.output), "format": result.format, **result.summary}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(f"{key}: {value}" for key, value in summary.items()))
    return 0


COMMANDS = (
    Command(
        name="validate",
        help="the CI gate: candidate vs reference on a task's dev data (metric drop, agreement); exit 0/1/2",
        description="Evaluate a candidate (OpenVINO or ONNX folder, FP32 or INT8) and a reference (PyTorch model "
        "or another exported folder) on the same examples with the task's official metric. Exit code 0 when the "
        "metric drop and the prediction agreement are within bounds, 1 when not, 2 for bad input.",
        epilog=VALIDATE_EXAMPLES,
        add_arguments=add_validate_arguments,
        run=run_validate,
    ),
    Command(
        name="benchmark",
        help="latency (p50/p90/p99) and throughput of exported folders beside PyTorch, ONNX Runtime and optimum-intel",
        description="Measure exported folders (candidates) and, in the same run on the same inputs, the peers a "
        "user would otherwise run, built from the source model in the first folder's pruneofa.json: PyTorch FP32 "
        "eager, ONNX Runtime FP32, optimum-intel's own INT8. Writes benchmark.json, benchmark.md and benchmark.png, "
        "and says which variant is fastest on this CPU.",
        epilog=BENCHMARK_EXAMPLES,
        add_arguments=add_benchmark_arguments,
        run=run_benchmark,
    ),
    Command(
        name="serve",
        help="serve an exported folder over HTTP: KServe v2 / Open Inference Protocol, JSON, Prometheus metrics",
        description="Serve an exported folder with FastAPI + uvicorn: KServe v2 REST endpoints (the API OpenVINO "
        "Model Server and Triton speak) with BYTES text inputs, POST /predict for plain JSON, GET /metrics. "
        "Concurrent requests are batched dynamically from a bounded queue (full: 503); input is validated before "
        "it reaches the runtime (400). On SIGTERM the server stops accepting and answers every accepted request "
        "within --graceful-timeout; requests it had to drop get 503 and the command exits 1. Sparse layers run "
        "pruneofa's sparse kernels (--sparse-kernels).",
        epilog=SERVE_EXAMPLES,
        add_arguments=add_serve_arguments,
        run=run_serve,
    ),
    Command(
        name="package",
        help="an OVMS or Triton model repository, or a compressed archive where pruned weights cost ~nothing",
        description="Write an exported folder as an OpenVINO Model Server repository (config.json + "
        "NAME/1/model.xml), a Triton repository (NAME/config.pbtxt + NAME/1/model.onnx or model.xml), or "
        "NAME.tar.xz whose size follows the non-zero weights (ratio to the dense FP32 export reported); "
        "--format folder restores one.",
        epilog=PACKAGE_EXAMPLES,
        add_arguments=add_package_arguments,
        run=run_package,
    ),
)
