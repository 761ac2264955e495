"""``pruneofa serve``: an exported folder behind HTTP (FastAPI + uvicorn).

Endpoints
* KServe v2 / Open Inference Protocol (the REST API OpenVINO Model Server and Triton speak):
  ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}[/versions/1]``,
  ``GET /v2/models/{name}[/versions/1]/ready``, ``POST /v2/models/{name}[/versions/1]/infer`` with BYTES
  inputs (``text`` [and ``text_pair``]; ``question`` and ``context`` for question answering).
* ``POST /predict``: ``{"inputs": ..., "parameters": {...}}`` → the Hugging Face-pipeline-shaped result.
* ``GET /metrics``: Prometheus text format.

Concurrent requests are batched: a single worker takes the first waiting request, collects more for up to
``max_delay_ms`` or until ``max_batch`` texts, and runs them as one padded batch (requests with different
parameters run as separate batches). The queue is bounded: when ``max_queue`` requests wait, new ones get
503 with ``Retry-After`` instead of piling up. Bodies over ``max_body_bytes``, more than ``max_items``
texts or a text over ``max_text_chars`` get 413; malformed JSON and wrong types 400; an unknown model 404.
On SIGTERM/SIGINT the server stops accepting connections, reports not-ready, finishes every request it
has accepted (queued ones included), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pruneofa import __version__
from pruneofa.core.errors import InputError
from pruneofa.deploy.config import ServeConfig, serve_config
from pruneofa.deploy.pipeline import Pipeline

logger = logging.getLogger("pruneofa.serve")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --- the task's inputs, parameters and KServe v2 outputs -------------------------------------------------

_PARAMETERS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "text-classification": {
        "top_k": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000),
        "function_to_apply": lambda v: v in ("softmax", "sigmoid", "none"),
    },
    "token-classification": {
        "aggregation_strategy": lambda v: v in ("none", "simple"),
        "ignore_labels": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    },
    "fill-mask": {"top_k": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100},
    "question-answering": {
        "top_k": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 20,
        "max_answer_len": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 512,
        "handle_impossible_answer": lambda v: isinstance(v, bool),
        "align_to_words": lambda v: isinstance(v, bool),
    },
    "feature-extraction": {
        "pooling": lambda v: v in ("none", "mean", "cls", None),
        "normalize": lambda v: isinstance(v, bool),
    },
}


def _check_parameters(task: str, parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise HttpError(400, '"parameters" must be a JSON object')
    allowed = _PARAMETERS[task]
    for key, value in parameters.items():
        if key not in allowed:
            raise HttpError(
                400, f"unknown parameter {key!r} for {task}; accepted: {', '.join(allowed) or 'none'}"
            )
        if not allowed[key](value):
            raise HttpError(400, f"invalid value {value!r} for parameter {key!r}")
    return dict(parameters)


@dataclass
class _Work:
    items: list[Any]
    parameters: dict[str, Any]
    future: asyncio.Future
    key: str = ""
    enqueued: float = field(default_factory=time.perf_counter)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pruneofa_requests_total",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pruneofa_request_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch = Histogram(
            "pruneofa_batch_texts",
            "texts per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.inference = Histogram(
            "pruneofa_inference_seconds",
            "model time per batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "pruneofa_queue_seconds",
            "time a request waited for its batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.queue_depth = Gauge("pruneofa_queue_depth", "requests waiting", registry=self.registry)
        self.rejected = Counter(
            "pruneofa_rejected_total", "requests refused", ["reason"], registry=self.registry
        )
        self.texts = Counter("pruneofa_texts_total", "texts inferred", registry=self.registry)
        self.truncated = Gauge(
            "pruneofa_truncated_texts", "texts truncated to the model's maximum", registry=self.registry
        )


class Batcher:
    """Bounded queue + one worker that groups waiting requests into batches."""

    def __init__(self, pipeline: Pipeline, config: ServeConfig, metrics: Metrics) -> None:
        self.pipeline = pipeline
        self.config = config
        self.metrics = metrics
        self.queue: asyncio.Queue[_Work] = asyncio.Queue(maxsize=config.max_queue)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pruneofa-infer")
        self.closing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish everything queued, then stop the worker."""
        self.closing = True
        if self._task is not None:
            await self._task
        self.executor.shutdown(wait=True)

    async def submit(self, items: list[Any], parameters: dict[str, Any]) -> list[Any]:
        future = asyncio.get_running_loop().create_future()
        work = _Work(items, parameters, future, json.dumps(parameters, sort_keys=True))
        try:
            self.queue.put_nowait(work)
        except asyncio.QueueFull:
            self.metrics.rejected.labels("queue_full").inc()
            raise HttpError(
                503,
                f"server busy: {self.config.max_queue} requests already waiting; retry later",
                {"Retry-After": "1"},
            ) from None
        self.metrics.queue_depth.set(self.queue.qsize())
        return await future

    async def _next(self, timeout: float) -> _Work | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            work = await self._next(0.05)
            if work is None:
                if self.closing and self.queue.empty():
                    return
                continue
            group, texts = [work], len(work.items)
            deadline = loop.time() + self.config.max_delay_ms / 1000.0
            while texts < self.config.max_batch:
                remaining = deadline - loop.time()
                more = self.queue.get_nowait() if not self.queue.empty() else None
                if more is None and remaining > 0:
                    more = await self._next(remaining)
                if more is None:
                    break
                group.append(more)
                texts += len(more.items)
            self.metrics.queue_depth.set(self.queue.qsize())
            by_key: dict[str, list[_Work]] = {}
            for item in group:
                by_key.setdefault(item.key, []).append(item)
            for works in by_key.values():
                await self._infer(works)

    async def _infer(self, works: list[_Work]) -> None:
        loop = asyncio.get_running_loop()
        items = [x for w in works for x in w.items]
        now = time.perf_counter()
        for w in works:
            self.metrics.queue_wait.observe(now - w.enqueued)
        self.metrics.batch.observe(len(items))
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self._call, items, works[0].parameters)
        except Exception:
            if len(works) > 1:  # one bad request must not fail the others: run them one by one
                for w in works:
                    await self._infer([w])
                return
            err = sys.exc_info()[1]
            if not works[0].future.done():
                works[0].future.set_exception(err)
            return
        self.metrics.inference.observe(time.perf_counter() - started)
        self.metrics.texts.inc(len(items))
        self.metrics.truncated.set(self.pipeline.stats.truncated)
        start = 0
        for w in works:
            if not w.future.done():
                w.future.set_result(results[start : start + len(w.items)])
            start += len(w.items)

    def _call(self, items: list[Any], parameters: dict[str, Any]) -> list[Any]:
        task = self.pipeline.task.name
        options = dict(parameters)
        if task == "feature-extraction":
            options["return_tensors"] = True
            if options.get("pooling") == "none":
                options["pooling"] = None
        result = self.pipeline(items, **options)
        return list(result)


# --- request parsing ---------------------------------------------------------------------------------


async def _read_json(request: Any, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HttpError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        except ValueError:
            raise HttpError(400, "invalid Content-Length header") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, f"request body is over the limit of {limit} bytes")
    if not body:
        raise HttpError(400, "empty request body; send a JSON object")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HttpError(400, f"malformed JSON: {err}") from None


def _check_text(text: Any, what: str, config: ServeConfig) -> str:
    if not isinstance(text, str):
        raise HttpError(400, f"{what} must be a string, got {type(text).__name__}")
    if len(text) > config.max_text_chars:
        raise HttpError(413, f"{what} has {len(text)} characters, over the limit of {config.max_text_chars}")
    return text


def _plain_items(
    task: str, inputs: Any, config: ServeConfig, mask_token: str | None
) -> tuple[list[Any], bool]:
    many = isinstance(inputs, list)
    values = inputs if many else [inputs]
    if not values:
        raise HttpError(400, '"inputs" is an empty list')
    if len(values) > config.max_items:
        raise HttpError(413, f"{len(values)} inputs in one request, over the limit of {config.max_items}")
    items = []
    for index, value in enumerate(values):
        where = f"inputs[{index}]" if many else "inputs"
        if task == "question-answering":
            if not isinstance(value, dict) or set(value) != {"question", "context"}:
                raise HttpError(400, f'{where} must be {{"question": str, "context": str}}')
            question = _check_text(value["question"], f"{where}.question", config)
            context = _check_text(value["context"], f"{where}.context", config)
            if not question.strip() or not context.strip():
                raise HttpError(400, f"{where}: question and context must not be empty")
            items.append({"question": question, "context": context})
        elif task == "text-classification" and isinstance(value, dict):
            if not {"text"} <= set(value) <= {"text", "text_pair"}:
                raise HttpError(400, f'{where} must be a string or {{"text": str, "text_pair": str}}')
            pair = {"text": _check_text(value["text"], f"{where}.text", config)}
            if "text_pair" in value:
                pair["text_pair"] = _check_text(value["text_pair"], f"{where}.text_pair", config)
            items.append(pair)
        else:
            text = _check_text(value, where, config)
            if task == "fill-mask" and mask_token and mask_token not in text:
                raise HttpError(400, f"{where} has no {mask_token} token to fill")
            items.append(text)
    return items, many


_V2_INPUTS = {"question-answering": ("question", "context"), "text-classification": ("text", "text_pair")}


def _v2_items(task: str, body: Any, config: ServeConfig, mask_token: str | None) -> tuple[list[Any], dict]:
    if not isinstance(body, dict):
        raise HttpError(400, "the request must be a JSON object with an 'inputs' list")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HttpError(400, "'inputs' must be a non-empty list of tensors")
    names = _V2_INPUTS.get(task, ("text",))
    tensors = {}
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise HttpError(400, "each input tensor is an object with name, shape, datatype and data")
        name = tensor["name"]
        if name not in names:
            raise HttpError(400, f"unknown input {name!r}; this {task} model takes {', '.join(names)}")
        if tensor.get("datatype") != "BYTES":
            raise HttpError(
                400, f"input {name!r} must have datatype BYTES (text), not {tensor.get('datatype')!r}"
            )
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise HttpError(400, f"input {name!r}: shape must be a list of non-negative integers")
        if not isinstance(data, list):
            raise HttpError(400, f"input {name!r}: data must be a list of strings")
        if math.prod(shape) != len(data):
            raise HttpError(400, f"input {name!r}: shape {shape} does not match {len(data)} data elements")
        if len(data) > config.max_items:
            raise HttpError(413, f"{len(data)} texts in one request, over the limit of {config.max_items}")
        tensors[name] = [_check_text(t, f"{name}[{i}]", config) for i, t in enumerate(data)]
    required = names[:2] if task == "question-answering" else names[:1]
    missing = [n for n in required if n not in tensors]
    if missing:
        raise HttpError(400, f"missing input {missing[0]!r}")
    count = len(tensors[names[0]])
    if any(len(v) != count for v in tensors.values()):
        raise HttpError(400, "all input tensors must have the same number of elements")
    if task == "question-answering":
        items = [
            {"question": q, "context": c}
            for q, c in zip(tensors["question"], tensors["context"], strict=True)
        ]
    elif task == "text-classification" and "text_pair" in tensors:
        items = [
            {"text": t, "text_pair": p} for t, p in zip(tensors["text"], tensors["text_pair"], strict=True)
        ]
    else:
        items = tensors["text"]
    if task == "fill-mask" and mask_token:
        for i, text in enumerate(items):
            if text.count(mask_token) != 1:
                raise HttpError(400, f"text[{i}] must hold exactly one {mask_token} for the v2 endpoint")
    return items, body.get("parameters")


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def v2_outputs(task: str, results: list[Any]) -> list[dict[str, Any]]:
    n = len(results)
    if task == "text-classification":
        top = [r[0] if isinstance(r, list) else r for r in results]
        return [
            _tensor("label", "BYTES", [n], [t["label"] for t in top]),
            _tensor("score", "FP32", [n], [t["score"] for t in top]),
        ]
    if task == "question-answering":
        top = [r[0] if isinstance(r, list) else r for r in results]
        return [
            _tensor("answer", "BYTES", [n], [t["answer"] for t in top]),
            _tensor("score", "FP32", [n], [t["score"] for t in top]),
            _tensor("start", "INT64", [n], [t["start"] for t in top]),
            _tensor("end", "INT64", [n], [t["end"] for t in top]),
        ]
    if task == "fill-mask":
        k = len(results[0])
        flat = [option for r in results for option in r]
        return [
            _tensor("token_str", "BYTES", [n, k], [o["token_str"] for o in flat]),
            _tensor("score", "FP32", [n, k], [o["score"] for o in flat]),
            _tensor("token", "INT64", [n, k], [o["token"] for o in flat]),
            _tensor("sequence", "BYTES", [n, k], [o["sequence"] for o in flat]),
        ]
    if task == "token-classification":
        return [_tensor("entities", "BYTES", [n], [json.dumps(r) for r in results])]
    vectors = [list(map(float, v)) for v in results]
    width = len(vectors[0]) if vectors else 0
    return [_tensor("embedding", "FP32", [n, width], [x for v in vectors for x in v])]


def _output_metadata(task: str, pipeline: Pipeline) -> list[dict[str, Any]]:
    specs = {
        "text-classification": [("label", "BYTES", [-1]), ("score", "FP32", [-1])],
        "question-answering": [
            ("answer", "BYTES", [-1]),
            ("score", "FP32", [-1]),
            ("start", "INT64", [-1]),
            ("end", "INT64", [-1]),
        ],
        "fill-mask": [
            ("token_str", "BYTES", [-1, -1]),
            ("score", "FP32", [-1, -1]),
            ("token", "INT64", [-1, -1]),
            ("sequence", "BYTES", [-1, -1]),
        ],
        "token-classification": [("entities", "BYTES", [-1])],
        "feature-extraction": [("embedding", "FP32", [-1, int(getattr(pipeline.config, "hidden_size", -1))])],
    }
    return [{"name": n, "datatype": d, "shape": s} for n, d, s in specs[task]]


# --- the application ---------------------------------------------------------------------------------


def create_app(pipeline: Pipeline, config: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``pipeline`` (``uvicorn.run(create_app(load(folder)))`` works)."""
    config = config or ServeConfig()
    name = config.name or pipeline.name
    task = pipeline.task.name
    metrics = Metrics()
    mask_token = getattr(pipeline.tokenizer, "mask_token", None)
    state = {"ready": False, "draining": False}

    @asynccontextmanager
    async def lifespan(app: Any):
        app.state.batcher = Batcher(pipeline, config, metrics)
        app.state.batcher.start()
        state["ready"] = True
        yield
        state["ready"] = False
        state["draining"] = True
        await app.state.batcher.stop()

    app = FastAPI(title=f"pruneofa serve: {name}", version=__version__, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.model_state = state

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(HttpError)
    async def _http_error(request: Request, err: HttpError) -> JSONResponse:
        return error(err.status, err.message, err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.exception("request failed")
        return error(500, f"internal error: {type(err).__name__}: {err}")

    @app.middleware("http")
    async def _count(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    def check_model(model_name: str, version: str | None = None) -> None:
        if model_name != name or version not in (None, "1"):
            raise HttpError(
                404,
                f"unknown model {model_name!r}"
                + (f" version {version!r}" if version else "")
                + f"; this server has {name!r} version 1",
            )

    def ready() -> bool:
        return state["ready"] and not state["draining"]

    async def run(items: list[Any], parameters: dict[str, Any]) -> list[Any]:
        if not ready():
            raise HttpError(
                503, "the server is shutting down; retry on another replica", {"Retry-After": "1"}
            )
        try:
            return await app.state.batcher.submit(items, parameters)
        except InputError as err:
            raise HttpError(400, str(err)) from None

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "pruneofa", "version": __version__, "extensions": []}

    @app.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def server_ready() -> Response:
        return Response(status_code=200 if ready() else 503)

    async def model_metadata(model_name: str, version: str | None = None) -> dict[str, Any]:
        check_model(model_name, version)
        names = _V2_INPUTS.get(task, ("text",))
        return {
            "name": name,
            "versions": ["1"],
            "platform": "openvino_ir" if pipeline.runtime == "openvino" else "onnxruntime_onnx",
            "inputs": [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in names],
            "outputs": _output_metadata(task, pipeline),
            "parameters": {"task": task, "max_length": pipeline.max_length},
        }

    async def model_ready(model_name: str, version: str | None = None) -> Response:
        check_model(model_name, version)
        return Response(status_code=200 if ready() else 503)

    async def infer(model_name: str, request: Request, version: str | None = None) -> dict[str, Any]:
        check_model(model_name, version)
        body = await _read_json(request, config.max_body_bytes)
        items, parameters = _v2_items(task, body, config, mask_token)
        parameters = _check_parameters(task, parameters)
        if task == "feature-extraction":
            parameters.setdefault("pooling", "mean")
            if parameters["pooling"] in (None, "none"):
                raise HttpError(400, "the v2 endpoint returns one vector per text: use pooling mean or cls")
        results = await run(items, parameters)
        response = {"model_name": name, "model_version": "1", "outputs": v2_outputs(task, results)}
        if isinstance(body.get("id"), str):
            response["id"] = body["id"]
        return response

    app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{version}", model_metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/ready", model_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{version}/ready", model_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/versions/{version}/infer", infer, methods=["POST"])

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        body = await _read_json(request, config.max_body_bytes)
        if not isinstance(body, dict) or "inputs" not in body:
            raise HttpError(400, 'the request must be a JSON object {"inputs": ..., "parameters": {...}}')
        unknown = set(body) - {"inputs", "parameters"}
        if unknown:
            raise HttpError(400, f"unknown field(s) {', '.join(sorted(unknown))}; send inputs and parameters")
        parameters = _check_parameters(task, body.get("parameters"))
        items, many = _plain_items(task, body["inputs"], config, mask_token)
        results = await run(items, parameters)
        if task == "feature-extraction":
            pooled = parameters.get("pooling") in ("mean", "cls")
            results = [r.tolist() if pooled else [r.tolist()] for r in results]
        if many:
            return JSONResponse(results)
        single = results[0]
        if task == "text-classification" and isinstance(body["inputs"], str) and "top_k" not in parameters:
            single = [single]  # transformers' text-classification pipeline wraps a single string's result
        return JSONResponse(single)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(app.state.batcher.queue.qsize() if hasattr(app.state, "batcher") else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def uvicorn_server(app: Any, config: ServeConfig) -> Any:
    import uvicorn

    class _Server(uvicorn.Server):
        """Marks the model not-ready as soon as a shutdown signal arrives (load balancers stop sending)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.model_state["draining"] = True
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            """uvicorn's, without re-raising the signal after a graceful stop: the command exits 0."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            timeout_graceful_shutdown=int(config.graceful_timeout_s) or None,
            lifespan="on",
        )
    )


def serve(
    folder: str,
    config: ServeConfig,
    *,
    quiet: bool = False,
) -> int:
    """Load ``folder`` and serve it until SIGTERM/SIGINT; returns 0 after a graceful shutdown."""
    from pruneofa.deploy.pipeline import load

    _check_port(config.host, config.port)
    pipeline = load(folder, config.runtime, hint=config.hint, batch_size=config.max_batch)
    pipeline(_warmup_input(pipeline))
    app = create_app(pipeline, config)
    server = uvicorn_server(app, config)
    if not quiet:
        print(pipeline.describe(), file=sys.stderr)
        print(
            f"serving {config.name or pipeline.name} ({pipeline.task.name}) on http://{config.host}:{config.port} "
            f"(KServe v2 under /v2, POST /predict, GET /metrics); Ctrl-C or SIGTERM stops after in-flight requests",
            file=sys.stderr,
            flush=True,
        )
    server.run()
    if not quiet:
        print("stopped: every accepted request was answered", file=sys.stderr)
    return 0


def _check_port(host: str, port: int) -> None:
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
                f"cannot listen on {host}:{port} ({err.strerror}); pass another --port or stop what uses it"
            ) from err


def _warmup_input(pipeline: Pipeline) -> Any:
    task = pipeline.task.name
    if task == "question-answering":
        return {"question": "What is warm?", "context": "The server is warm after this request."}
    if task == "fill-mask":
        return f"The server is {pipeline.tokenizer.mask_token}."
    return "The server is warming up."


__all__ = ["ServeConfig", "create_app", "serve", "serve_config"]
