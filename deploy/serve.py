"""``pruneofa serve``: an exported folder behind HTTP (FastAPI + uvicorn), see :mod:`pruneofa.deploy.serving`.

``{name}`` in the URLs is ``--name`` or, by default, the name derived from the folder's ``pruneofa.json``
(source model, target, precision: ``all-MiniLM-L6-v2-openvino-int8``), the one ``pruneofa package`` gives
the model in an OVMS or Triton repository; the command prints it and the infer URL once it listens.

The server faces untrusted clients, so every request is checked before anything reaches the runtime:
body size, JSON syntax and nesting depth, valid Unicode (a lone surrogate crashes tokenizers and
runtimes), strict KServe shapes, datatypes and unique tensor names, the task's parameters. A bad request
gets a 4xx with ``{"error": "one line"}``; anything unexpected a 500 with a generic body (the traceback
goes to the log, never to the client), counted in ``/metrics``, and the connection stays usable for the
requests behind it. Clients that stall get 408 (headers: ``header_timeout_s``; body: ``body_timeout_s``).

On SIGTERM/SIGINT the server stops accepting connections, reports not-ready and answers every request it
has accepted (queued ones included). If that takes longer than ``graceful_timeout_s``, what is left is
answered 503 (``Retry-After``), counted, reported, and the command exits 1 instead of 0.
"""

from __future__ import annotations

import sys

from pruneofa.core.errors import InputError
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving.app import create_app, infer_url, load_for_serving, served_name
from pruneofa.deploy.serving.batching import Lifecycle
from pruneofa.deploy.serving.errors import INTERNAL_ERROR
from pruneofa.deploy.serving.hardening import uvicorn_server


def serve(
    folder: str,
    config: ServeConfig,
    *,
    quiet: bool = False,
) -> int:
    """Load ``folder`` and serve it until SIGTERM/SIGINT. Returns 0 when every accepted request was
    answered, 1 when the graceful-shutdown limit made the server drop some (they got 503)."""
    from pruneofa.core.modelio import refuse_custom_code

    refuse_custom_code(folder)
    name = served_name(folder, config)
    config = config.model_copy(update={"name": name})
    _check_port(config.host, config.port)
    if config.grpc_port is not None:
        _check_grpc(config)
    pipeline = load_for_serving(folder, config)
    app = create_app(pipeline, config)

    def announce(port: int) -> None:
        base = f"http://{f'[{config.host}]' if ':' in config.host else config.host}:{port}"  # as bound
        grpc_target = _grpc_target(app, config)
        print(
            f"serving {config.name} ({pipeline.task.name}) on {base} (KServe v2 under /v2, POST /predict, "
            f"GET /metrics); Ctrl-C or SIGTERM stops after answering what was accepted (at most "
            f"{config.graceful_timeout_s:g} s)\n"
            f"infer: POST {infer_url(config.host, port, name)}"
            + (f"\ngRPC (KServe v2, inference.GRPCInferenceService): {grpc_target}" if grpc_target else ""),
            file=sys.stderr,
            flush=True,
        )

    server = uvicorn_server(app, config, None if quiet else announce)
    if not quiet:
        print(pipeline.describe(), file=sys.stderr, flush=True)
    server.run()
    return shutdown_report(app.state.lifecycle, config, quiet=quiet)


def shutdown_report(lifecycle: Lifecycle, config: ServeConfig, *, quiet: bool = False) -> int:
    """One line on how the shutdown went, and the exit code that says the same."""
    dropped = lifecycle.dropped
    if dropped:
        print(
            f"stopped: {dropped} of {lifecycle.accepted} accepted requests were not answered within "
            f"--graceful-timeout {config.graceful_timeout_s:g} s (they got 503 with Retry-After); give "
            "the server more time or take it out of the load balancer first",
            file=sys.stderr,
        )
        return 1
    if not quiet:
        print(f"stopped: every accepted request was answered ({lifecycle.accepted})", file=sys.stderr)
    return 0


def _check_grpc(config: ServeConfig) -> None:
    """``--grpc-port``: grpcio and the stubs importable, a port of its own, free."""
    try:
        import grpc  # noqa: F401
        from tritonclient.grpc import service_pb2_grpc  # noqa: F401
    except (ImportError, RuntimeError) as err:  # tritonclient raises RuntimeError when grpcio is missing
        raise InputError(
            f"--grpc-port needs grpcio and tritonclient ({type(err).__name__}: {err}); "
            "pip install 'pruneofa[grpc]', or leave --grpc-port out to serve REST only"
        ) from None
    if config.grpc_port == config.port and config.port != 0:
        raise InputError(
            f"--grpc-port {config.grpc_port} is --port too; give gRPC a port of its own, e.g. 8001"
        )
    if config.grpc_port:
        _check_port(config.host, config.grpc_port, "--grpc-port")


def _grpc_target(app: object, config: ServeConfig) -> str | None:
    port = getattr(getattr(app, "state", None), "grpc_port", None)
    if port is None:
        return None
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)
    return f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"


def _check_port(host: str, port: int, flag: str = "--port") -> None:
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise InputError(f"cannot resolve --host {host} ({err}); use an address such as 127.0.0.1") from err
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise InputError(
                f"cannot listen on {host}:{port} ({err.strerror}); pass another {flag} or stop what uses it"
            ) from err


__all__ = ["INTERNAL_ERROR", "ServeConfig", "serve", "shutdown_report"]
