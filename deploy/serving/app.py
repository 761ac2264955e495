"""The ASGI application: the served model's routes (KServe v2, ``/predict``, ``/metrics``), its readiness,
and how a refused request is answered.

Endpoints
* KServe v2 / Open Inference Protocol (the REST API OpenVINO Model Server and Triton speak):
  ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}[/versions/1]``,
  ``GET /v2/models/{name}[/versions/1]/ready``, ``POST /v2/models/{name}[/versions/1]/infer`` with BYTES
  inputs (the task's input tensors: ``text`` [and ``text_pair``]; ``question`` and ``context`` for
  question answering).
* The repository extension's index as Triton's clients call it: ``POST /v2/repository/index`` (body
  empty or ``{"ready": true}``) → ``[{"name", "version", "state", "reason"}]``; this server serves the one
  model it was started with, so ``POST /v2/repository/models/{name}/load|unload`` are refused (400).
* The same v2 protocol over gRPC with ``--grpc-port`` (:mod:`.grpc_service`), started and stopped with the
  app, on the same batcher.
* ``POST /predict``: ``{"inputs": ..., "parameters": {...}}`` → the Hugging Face-pipeline-shaped result.
* ``GET /metrics``: Prometheus text format.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from pruneofa import __version__
from pruneofa.core.errors import InputError
from pruneofa.core.inference import Pipeline
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.naming import default_model_name
from pruneofa.deploy.serving import codec
from pruneofa.deploy.serving.batching import Batcher, Lifecycle, Metrics
from pruneofa.deploy.serving.errors import HttpError, error_response, short
from pruneofa.deploy.serving.hardening import Guard
from pruneofa.deploy.serving.requests import parse_json, read_body

_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # what OVMS and Triton accept, and URL-safe


def load_for_serving(folder: str | Path, config: ServeConfig) -> Pipeline:
    """The folder's pipeline as a server runs it (runtime, task, hint, batch size and kernels from
    ``config``), warmed up on its task's warm-up input so the first request does not pay for it."""
    from pruneofa.deploy.pipeline import load

    pipeline = load(
        folder,
        config.runtime,
        task=config.task,
        hint=config.hint,
        precision=config.precision,
        batch_size=config.max_batch,
        sparse_kernels=config.sparse_kernels,
        static_shapes=config.static_shapes,
    )
    pipeline(pipeline.task.warmup_input(pipeline.tokenizer), **pipeline.task.warmup_options)
    return pipeline


def served_name(folder: str | Path, config: ServeConfig) -> str:
    """The model's name in the v2 URLs: ``--name``, else the one :func:`default_model_name` derives from the
    folder's ``pruneofa.json`` (the name ``pruneofa package`` gives it in an OVMS or Triton repository)."""
    if config.name is None:
        return default_model_name(folder)
    if not _SERVED_NAME.match(config.name):
        raise InputError(
            f"--name {short(config.name)} cannot be part of a URL; use letters, digits, _ . - "
            "(starting with a letter or digit)"
        )
    return config.name


def infer_url(host: str, port: int, name: str) -> str:
    """The KServe v2 infer URL of the served model, with an address a client on this machine can use."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/v2/models/{name}/infer"


class ModelService:
    """One served model: its name and pipeline, its readiness (:class:`Lifecycle`, the one record of it),
    and the route handlers that check a request, queue it on the batcher and encode the answer."""

    def __init__(self, pipeline: Pipeline, config: ServeConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self.name = served_name(pipeline.folder, config)
        self.task = pipeline.task
        self.metrics = Metrics()
        self.lifecycle = Lifecycle()
        self.batcher: Batcher | None = None
        self.grpc_server: Any = None
        self.grpc_port: int | None = None  # bound (``--grpc-port 0`` picks one) once the app has started

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        self.batcher = app.state.batcher = Batcher(self.pipeline, self.config, self.metrics)
        self.lifecycle.batcher = self.batcher
        self.batcher.start()
        if self.config.grpc_port is not None:
            from pruneofa.deploy.serving.grpc_service import start_grpc_server

            # pyright reads this file both as deploy.serving.app and, through the editable link tree, as
            # pruneofa.deploy.serving.app: two ModelService classes to it, one at run time.
            self.grpc_server, self.grpc_port = await start_grpc_server(self)  # pyright: ignore[reportArgumentType]
            app.state.grpc_port = self.grpc_port
        self.lifecycle.ready = True
        yield
        self.lifecycle.ready = False
        self.lifecycle.draining = True
        if self.grpc_server is not None:  # refuses new calls, lets those in flight finish on the batcher
            await self.grpc_server.stop(self.config.graceful_timeout_s)
        await self.batcher.stop()

    def begin_drain(self) -> None:
        """Thread-safe (signal handlers call it): stop being ready, start the graceful-shutdown clock."""
        self.lifecycle.draining = True
        if self.batcher is not None:
            self.batcher.drain_within(self.config.graceful_timeout_s)

    # --- helpers of the handlers -----------------------------------------------------------------------

    def check_model(self, model_name: str, version: str | None = None) -> None:
        if model_name != self.name or version not in (None, "1"):
            raise HttpError(
                404,
                f"unknown model {short(model_name)}"
                + (f" version {short(version)}" if version else "")
                + f"; this server has {self.name!r} version 1",
            )

    async def read_json(self, request: Request) -> Any:
        return parse_json(await read_body(request, self.config), self.config.max_json_depth)

    async def run(self, items: list[Any], parameters: dict[str, Any]) -> list[Any]:
        if not self.lifecycle.serving or self.batcher is None:
            raise HttpError(
                503, "the server is shutting down; retry on another replica", {"Retry-After": "1"}
            )
        try:
            return await self.batcher.submit(items, parameters)
        except InputError as err:
            raise HttpError(400, str(err)) from None

    # --- the route handlers ----------------------------------------------------------------------------

    async def server_metadata(self) -> dict[str, Any]:
        return {"name": "pruneofa", "version": __version__, "extensions": []}

    async def live(self) -> Response:
        return Response(status_code=200)

    async def server_ready(self) -> Response:
        return Response(status_code=200 if self.lifecycle.serving else 503)

    async def model_metadata(self, model_name: str, version: str | None = None) -> dict[str, Any]:
        self.check_model(model_name, version)
        return codec.model_metadata(self.name, self.pipeline)

    async def model_ready(self, model_name: str, version: str | None = None) -> Response:
        self.check_model(model_name, version)
        return Response(status_code=200 if self.lifecycle.serving else 503)

    def repository_entries(self, ready_only: bool = False) -> list[dict[str, str]]:
        """The repository index (REST and gRPC): the one served model, ``READY`` while it serves, else
        ``UNAVAILABLE`` with the reason."""
        if self.lifecycle.serving:
            state, reason = "READY", ""
        elif self.lifecycle.draining:
            state, reason = "UNAVAILABLE", "the server is shutting down"
        else:
            state, reason = "UNAVAILABLE", "the server is starting"
        if ready_only and state != "READY":
            return []
        return [{"name": self.name, "version": "1", "state": state, "reason": reason}]

    async def repository_index(self, request: Request) -> Any:
        body = await read_body(request, self.config, allow_empty=True)
        options = parse_json(body, self.config.max_json_depth) if body.strip() else {}
        if not isinstance(options, dict) or set(options) - {"ready"}:
            raise HttpError(400, 'the repository index takes an empty body or {"ready": true|false}')
        ready = options.get("ready", False)
        if not isinstance(ready, bool):
            raise HttpError(400, '"ready" must be true or false')
        return JSONResponse(self.repository_entries(ready))

    async def repository_change(self, model_name: str) -> Response:
        raise HttpError(
            400,
            f"this server serves {self.name!r} fixed at startup and does not load or unload models; start "
            "another pruneofa serve for another model",
        )

    async def infer(self, model_name: str, request: Request, version: str | None = None) -> dict[str, Any]:
        self.check_model(model_name, version)
        if "inference-header-content-length" in request.headers:
            raise HttpError(
                400,
                "binary tensor data is not accepted; send the inputs as JSON (tritonclient: "
                "set_data_from_numpy(..., binary_data=False))",
            )
        body = await self.read_json(request)
        items, parameters = codec.v2_items(self.task, body, self.config, self.pipeline.tokenizer)
        parameters = codec.v2_parameters(self.task, parameters)
        results = await self.run(items, parameters)
        response = {
            "model_name": self.name,
            "model_version": "1",
            "outputs": codec.v2_outputs(self.task, results),
        }
        if "id" in body:
            response["id"] = body["id"]
        return response

    async def predict(self, request: Request) -> Any:
        body = await self.read_json(request)
        if not isinstance(body, dict) or "inputs" not in body:
            raise HttpError(400, 'the request must be a JSON object {"inputs": ..., "parameters": {...}}')
        unknown = set(body) - {"inputs", "parameters"}
        if unknown:
            fields = ", ".join(sorted(short(k, 30) for k in unknown))
            raise HttpError(400, f"unknown field(s) {fields}; send inputs and parameters")
        parameters = codec.check_parameters(self.task, body.get("parameters"))
        items, many = codec.plain_items(self.task, body["inputs"], self.config, self.pipeline.tokenizer)
        results = await self.run(items, parameters)
        return JSONResponse(self.task.plain_result(body["inputs"], parameters, results, many))

    async def prometheus(self) -> Response:
        depth = self.batcher.queue.qsize() if self.batcher is not None else 0
        self.metrics.queue_depth.set(depth)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HttpError)
    return error_response(err.status, err.message, err.headers)


async def _routing_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StarletteHTTPException)
    headers = dict(err.headers or {})
    if err.status_code == 404:
        message = f"no endpoint {short(request.url.path)}; see GET /v2, POST /predict, GET /metrics"
    elif err.status_code == 405:
        message = f"{request.method} is not allowed here; use {headers.get('Allow', 'another method')}"
    else:
        message = str(err.detail)
    return error_response(err.status_code, message, headers)


async def _invalid(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    first = (err.errors() or [{}])[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(400, f"invalid request: {where}: {first.get('msg', 'invalid')}")


def create_app(pipeline: Pipeline, config: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``pipeline`` (``uvicorn.run(create_app(load(folder)))`` works)."""
    service = ModelService(pipeline, config or ServeConfig())
    docs = service.config.docs
    app = FastAPI(
        title=f"pruneofa serve: {service.name}",
        version=__version__,
        lifespan=service.lifespan,
        redoc_url=None,
        docs_url="/docs" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.metrics = service.metrics
    app.state.lifecycle = service.lifecycle
    app.state.begin_drain = service.begin_drain
    app.state.service = service
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _routing_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(
        Guard,
        metrics=service.metrics,
        lifecycle=service.lifecycle,
        max_header_bytes=service.config.max_header_bytes,
    )
    routes = [
        ("/v2", service.server_metadata, "GET"),
        ("/v2/health/live", service.live, "GET"),
        ("/v2/health/ready", service.server_ready, "GET"),
        ("/v2/models/{model_name}", service.model_metadata, "GET"),
        ("/v2/models/{model_name}/versions/{version}", service.model_metadata, "GET"),
        ("/v2/models/{model_name}/ready", service.model_ready, "GET"),
        ("/v2/models/{model_name}/versions/{version}/ready", service.model_ready, "GET"),
        ("/v2/models/{model_name}/infer", service.infer, "POST"),
        ("/v2/models/{model_name}/versions/{version}/infer", service.infer, "POST"),
        ("/v2/repository/index", service.repository_index, "POST"),
        ("/v2/repository/models/{model_name}/load", service.repository_change, "POST"),
        ("/v2/repository/models/{model_name}/unload", service.repository_change, "POST"),
        ("/predict", service.predict, "POST"),
        ("/metrics", service.prometheus, "GET"),
    ]
    for path, handler, method in routes:
        app.add_api_route(path, handler, methods=[method])
    return app
