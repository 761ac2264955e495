"""``python -m pruneofa.deploy.kserve_runtime``: a pruneofa folder served by ``kserve.ModelServer``, the
command of a KServe InferenceService's container.

Flags: ``--model_dir`` (default ``/mnt/models``, where KServe's storage initializer puts ``storageUri``),
the options of ``pruneofa serve`` that shape inference (task, runtime, sparse kernels, hint, batching,
request limits), and kserve's own (``--model_name``, ``--http_port`` 8080, ``--grpc_port`` 8081,
``--workers``, ...). The model's name in the URLs is ``--model_name`` when given, else the one ``pruneofa
serve`` derives from the folder's ``pruneofa.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pruneofa.core.cliargs import add_config_arguments, config_from_args
from pruneofa.core.errors import InputError
from pruneofa.deploy.config import ServeConfig

# ``pruneofa serve``'s options that apply here; the HTTP ones (host, ports, body and header limits,
# timeouts) belong to kserve's servers.
APPLIED = (
    "task",
    "runtime",
    "sparse_kernels",
    "hint",
    "max_batch",
    "max_delay_ms",
    "max_queue",
    "max_items",
    "max_text_chars",
)


def _name_given(argv: Sequence[str]) -> bool:
    return any(a == "--model_name" or a.startswith("--model_name=") for a in argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from kserve import ModelServer, model_server  # pyright: ignore[reportMissingImports]
    except ImportError as err:
        print(f"error: this needs kserve ({err}); pip install 'pruneofa[kserve]'", file=sys.stderr)
        return 2
    from pruneofa.deploy.kserve_runtime.model import PruneofaModel

    parser = argparse.ArgumentParser(
        prog="python -m pruneofa.deploy.kserve_runtime",
        description="serve a pruneofa folder (with its sparse kernels) with kserve.ModelServer",
        parents=[model_server.parser],
    )
    parser.add_argument("--model_dir", default="/mnt/models", help="the exported or calibrated folder")
    add_config_arguments(parser, ServeConfig, skip=set(ServeConfig.model_fields) - set(APPLIED))
    args = parser.parse_args(argv)
    try:
        name = args.model_name if _name_given(argv) else None
        config = config_from_args(ServeConfig, args, name=name)
        model = PruneofaModel(args.model_dir, config)
        model.load()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(model.pipeline.describe() if model.pipeline else "", file=sys.stderr, flush=True)
    ModelServer().start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
