"""``pruneofa serve``: an exported folder behind HTTP (FastAPI + uvicorn).

Endpoints
* KServe v2 / Open Inference Protocol (the REST API OpenVINO Model Server and Triton speak):
  ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}[/versions/1]``,
  ``GET /v2/models/{name}[/versions/1]/ready``, ``POST /v2/models/{name}[/versions/1]/infer`` with BYTES
  inputs (``text`` [and ``text_pair``]; ``question`` and ``context`` for question answering).
* ``POST /predict``: ``{"inputs": ..., "parameters": {...}}`` → the Hugging Face-pipeline-shaped result.
* ``GET /metrics``: Prometheus text format.

``{name}`` is ``--name`` or, by default, the name derived from the folder's ``pruneofa.json`` (source model,
target, precision: ``all-MiniLM-L6-v2-openvino-int8``), the one ``pruneofa package`` gives the model in an
OVMS or Triton repository; the command prints it and the infer URL once it listens.

Concurrent requests are batched: a single worker takes the first waiting request, collects more for up to
``max_delay_ms`` or until ``max_batch`` texts, and runs them as one padded batch (requests with different
parameters run as separate batches). The queue is bounded: when ``max_queue`` requests wait, new ones get
503 with ``Retry-After`` instead of piling up.

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

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from pruneofa import __version__
from pruneofa.core.errors import InputError, first_line
from pruneofa.deploy.config import ServeConfig, serve_config
from pruneofa.deploy.naming import default_model_name
from pruneofa.deploy.pipeline import Pipeline

logger = logging.getLogger("pruneofa.serve")

# A response after which the rest of the request may still be on the wire (too large, too slow): the
# connection is closed rather than read to the end, and the client is told so.
CLOSE = {"Connection": "close"}
INTERNAL_ERROR = "internal error; the server logged the details"
_SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # what OVMS and Triton accept, and URL-safe


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --- the task's inputs, parameters and KServe v2 outputs -------------------------------------------------


def _int_between(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


_PARAMETERS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "text-classification": {
        "top_k": lambda v: v is None or _int_between(1, 1000)(v),
        "function_to_apply": lambda v: v in ("softmax", "sigmoid", "none"),
    },
    "token-classification": {
        "aggregation_strategy": lambda v: v in ("none", "simple"),
        "ignore_labels": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    },
    "fill-mask": {"top_k": _int_between(1, 100)},
    "question-answering": {
        "top_k": _int_between(1, 20),
        "max_answer_len": _int_between(1, 512),
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
            raise HttpError(400, f"invalid value {_short(value)} for parameter {key!r}")
    return dict(parameters)


def _short(value: Any, width: int = 60) -> str:
    """A client's value for a one-line message: repr (ASCII-safe escapes), shortened."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(eq=False)
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
        self.dropped = Counter(
            "pruneofa_dropped_total",
            "accepted requests answered 503 because the graceful-shutdown limit ran out",
            registry=self.registry,
        )


class Batcher:
    """Bounded queue + one worker that groups waiting requests into batches.

    Every accepted request is ``pending`` until its future is resolved, so that a shutdown that runs out
    of time can answer exactly those (503) and say how many there were."""

    def __init__(self, pipeline: Pipeline, config: ServeConfig, metrics: Metrics) -> None:
        self.pipeline = pipeline
        self.config = config
        self.metrics = metrics
        self.queue: asyncio.Queue[_Work] = asyncio.Queue(maxsize=config.max_queue)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pruneofa-infer")
        self.closing = False
        self.pending: set[_Work] = set()
        self.accepted = 0
        self.dropped = 0
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        """Finish everything queued, then stop the worker."""
        self.closing = True
        if self._task is not None:
            await self._task
        if self._deadline is not None:
            self._deadline.cancel()
        self.executor.shutdown(wait=True)

    def drain_within(self, seconds: float) -> None:
        """From any thread (a signal handler): answer what is still pending with 503 after ``seconds``."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: nothing is pending
                loop.call_soon_threadsafe(self._arm_deadline, seconds)

    def _arm_deadline(self, seconds: float) -> None:
        if self._deadline is None and self._loop is not None:
            self._deadline = self._loop.call_later(seconds, self.abandon)

    def abandon(self) -> int:
        """Answer every accepted, unanswered request now with 503; returns how many there were."""
        while not self.queue.empty():
            self.queue.get_nowait()
        unanswered = [w for w in self.pending if not w.future.done()]
        limit = f"{self.config.graceful_timeout_s:g}"
        for work in unanswered:
            work.future.set_exception(
                HttpError(
                    503,
                    f"the server shut down before answering (--graceful-timeout {limit} s ran out); retry",
                    {"Retry-After": "1", **CLOSE},
                )
            )
        self.pending.clear()
        self.dropped += len(unanswered)
        self.metrics.dropped.inc(len(unanswered))
        self.metrics.queue_depth.set(0)
        if unanswered:
            logger.error(
                "graceful shutdown limit of %s s reached: %d accepted request(s) answered 503",
                limit,
                len(unanswered),
            )
        return len(unanswered)

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
        self.accepted += 1
        self.pending.add(work)
        future.add_done_callback(lambda _: self.pending.discard(work))
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
                try:
                    await self._infer(works)
                except Exception as err:  # the worker must live on: every later request would wait for ever
                    logger.exception("a batch failed outside the model call")
                    for w in works:
                        if not w.future.done():
                            w.future.set_exception(err)

    async def _infer(self, works: list[_Work]) -> None:
        works = [w for w in works if not w.future.done()]  # answered already (shutdown limit, disconnect)
        if not works:
            return
        loop = asyncio.get_running_loop()
        items = [x for w in works for x in w.items]
        now = time.perf_counter()
        for w in works:
            self.metrics.queue_wait.observe(now - w.enqueued)
        self.metrics.batch.observe(len(items))
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self._call, items, works[0].parameters)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as caught:  # a Rust panic in a tokenizer is a BaseException, not an Exception
            if len(works) > 1:  # one bad request must not fail the others: run them one by one
                for w in works:
                    await self._infer([w])
                return
            err = (
                caught
                if isinstance(caught, Exception)
                else RuntimeError(f"{type(caught).__name__}: {caught}")
            )
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
        if task == "question-answering":
            options["doc_stride"] = safe_doc_stride(int(self.pipeline.max_length))
        result = self.pipeline(items, **options)
        return list(result)


def safe_doc_stride(max_length: int, max_seq_len: int = 384, wanted: int = 128) -> int:
    """The overlap of question-answering windows that always leaves the tokenizer room for context.

    The pipeline cuts a long question to half the window and caps the overlap at half the window too, so
    for a model with a short maximum length (under ~270 tokens) a long question leaves less context room
    than the overlap, and the fast tokenizer panics (a Rust panic, raised as a BaseException). Overlap
    128 (transformers' default) wherever the window allows it; less only for such models."""
    window = min(max_seq_len, max_length)
    return max(1, min(wanted, window // 2 - 5))  # 5 ≥ the special tokens of a BERT or RoBERTa pair


# --- request parsing ---------------------------------------------------------------------------------


async def _read_body(request: Request, config: ServeConfig) -> bytes:
    """The body, refused as soon as it is known to be too large (413) or too slow to arrive (408)."""
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise HttpError(400, "invalid Content-Length header", CLOSE)
        if int(declared) > limit:
            raise HttpError(
                413, f"request body of {declared} bytes is over the limit of {limit} bytes", CLOSE
            )
    body = bytearray()
    try:
        async with asyncio.timeout(config.body_timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HttpError(413, f"request body is over the limit of {limit} bytes", CLOSE)
    except TimeoutError:
        raise HttpError(
            408, f"the request body did not arrive within {config.body_timeout_s:g} s; send it at once", CLOSE
        ) from None
    if not body:
        raise HttpError(400, "empty request body; send a JSON object")
    return bytes(body)


def parse_json(body: bytes, max_depth: int) -> Any:
    """JSON from a client: syntax, nesting depth and Unicode checked, every problem a 400 with one line."""
    try:
        value = json.loads(body.decode("utf-8"))  # UTF-8 only: json.loads(bytes) would guess UTF-16/32
    except json.JSONDecodeError as err:
        raise HttpError(400, f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise HttpError(
            400, f"the body is not UTF-8 (bad byte at offset {err.start}); send UTF-8 JSON"
        ) from None
    except RecursionError:
        raise HttpError(400, f"JSON nested too deeply; at most {max_depth} levels are accepted") from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise HttpError(400, f"malformed JSON: {first_line(err)}") from None
    _check_json_value(value, max_depth)
    return value


def _check_json_value(value: Any, max_depth: int) -> None:
    """Depth and text of a parsed JSON value, walked without recursion.

    A lone surrogate (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8: tokenizers, runtimes and
    the JSON response itself would fail on it, so it is refused here with where it was found."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > max_depth:
            raise HttpError(400, f"JSON nested deeper than {max_depth} levels (at {_where(path[:4])}...)")
        if isinstance(item, str):
            _check_unicode(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_unicode(key, (*path, "<key>"))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))


def _check_unicode(text: str, path: tuple[Any, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise HttpError(
            400,
            f"{_where(path)} holds a lone surrogate (U+{ord(bad):04X}) at character {err.start}, which is "
            "not valid Unicode; send valid UTF-8 text",
        ) from None


def _where(path: tuple[Any, ...]) -> str:
    """``inputs[0].data[1]``: where in the body a value was found (keys that are not plain names quoted)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "<key>":
            out += " (an object key)"
        else:
            name = part if part.isascii() and part.isidentifier() else _short(part, 30)
            out += f".{name}" if out else name
    return out or "the body"


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
_V2_REQUEST_KEYS = {"id", "inputs", "outputs", "parameters"}
_V2_TENSOR_KEYS = {"name", "shape", "datatype", "data", "parameters"}


def _v2_tensor(tensor: Any, names: tuple[str, ...], task: str, config: ServeConfig) -> tuple[str, list[str]]:
    """One KServe v2 input tensor, strictly: a known name, datatype BYTES, shape ``[N]`` for N strings."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise HttpError(400, "each input tensor is an object with name, shape, datatype and data")
    name = tensor["name"]
    if name not in names:
        raise HttpError(400, f"unknown input {_short(name)}; this {task} model takes {', '.join(names)}")
    unknown = set(tensor) - _V2_TENSOR_KEYS
    if unknown:
        fields = ", ".join(sorted(_short(k, 30) for k in unknown))
        raise HttpError(400, f"input {name!r} has unknown field(s) {fields}; use name, shape, datatype, data")
    if tensor.get("datatype") != "BYTES":
        raise HttpError(
            400, f"input {name!r} must have datatype BYTES (text), not {_short(tensor.get('datatype'))}"
        )
    shape, data = tensor.get("shape"), tensor.get("data")
    if not isinstance(data, list) or not data:
        raise HttpError(400, f"input {name!r}: data must be a non-empty list of strings")
    if len(data) > config.max_items:
        raise HttpError(413, f"{len(data)} texts in one request, over the limit of {config.max_items}")
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] != len(data)
    ):
        raise HttpError(
            400,
            f"input {name!r}: shape {_short(shape)} does not match {len(data)} strings; send shape [{len(data)}]",
        )
    if "parameters" in tensor and not isinstance(tensor["parameters"], dict):
        raise HttpError(400, f"input {name!r}: parameters must be a JSON object")
    return name, [_check_text(t, f"{name}[{i}]", config) for i, t in enumerate(data)]


def _v2_items(task: str, body: Any, config: ServeConfig, mask_token: str | None) -> tuple[list[Any], dict]:
    if not isinstance(body, dict):
        raise HttpError(400, "the request must be a JSON object with an 'inputs' list")
    unknown = set(body) - _V2_REQUEST_KEYS
    if unknown:
        fields = ", ".join(sorted(_short(k, 30) for k in unknown))
        raise HttpError(400, f"unknown field(s) {fields}; a v2 request has id, inputs, outputs, parameters")
    if "id" in body and not isinstance(body["id"], str):
        raise HttpError(400, "'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HttpError(400, "'inputs' must be a non-empty list of tensors")
    names = _V2_INPUTS.get(task, ("text",))
    tensors: dict[str, list[str]] = {}
    for tensor in inputs:
        name, texts = _v2_tensor(tensor, names, task, config)
        if name in tensors:
            raise HttpError(400, f"input {name!r} is given twice; send each input tensor once")
        tensors[name] = texts
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
        if any(not item["question"].strip() or not item["context"].strip() for item in items):
            raise HttpError(400, "question and context must not be empty")
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


@dataclass
class Lifecycle:
    """What the server promised and kept: readiness, and at shutdown how many accepted requests were
    answered and how many the graceful-shutdown limit forced it to drop."""

    ready: bool = False
    draining: bool = False
    cut_off: int = 0  # cancelled by uvicorn's own backstop after the limit (should stay 0)
    batcher: Batcher | None = None

    @property
    def accepted(self) -> int:
        """Inference requests taken into the queue (refusals with 503 or 4xx are not accepted)."""
        return self.batcher.accepted if self.batcher is not None else 0

    @property
    def dropped(self) -> int:
        return self.cut_off + (self.batcher.dropped if self.batcher is not None else 0)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Guard:
    """The outermost application layer of our own: every response, a 500 included, is counted in
    ``/metrics``; an unexpected exception becomes a complete 500 with a generic body (the traceback is
    logged, not sent), so uvicorn keeps the connection and answers the requests pipelined behind it."""

    def __init__(self, app: Any, metrics: Metrics, lifecycle: Lifecycle, max_header_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            size = _header_bytes(scope)
            if size > self.max_header_bytes:  # h11 bounds only headers that arrive in pieces
                message = (
                    f"request line and headers are {size} bytes, over the limit of {self.max_header_bytes}"
                )
                await _error(431, message, CLOSE)(scope, receive, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        except ClientDisconnect:
            status.append(499)  # the client went away; there is no one to answer
        except asyncio.CancelledError:
            self.lifecycle.cut_off += 1
            if not status:
                status.append(503)
                with contextlib.suppress(Exception):
                    await _error(503, "the server shut down before answering; retry", CLOSE)(
                        scope, receive, send
                    )
            raise
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if status:  # the response had started: nothing coherent can follow on this connection
                raise
            status.append(500)
            await _error(500, INTERNAL_ERROR)(scope, receive, send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status[0] if status else 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def _header_bytes(scope: dict) -> int:
    request_line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return request_line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


def served_name(folder: str | Path, config: ServeConfig) -> str:
    """The model's name in the v2 URLs: ``--name``, else the one :func:`default_model_name` derives from the
    folder's ``pruneofa.json`` (the name ``pruneofa package`` gives it in an OVMS or Triton repository)."""
    if config.name is None:
        return default_model_name(folder)
    if not _SERVED_NAME.match(config.name):
        raise InputError(
            f"--name {_short(config.name)} cannot be part of a URL; use letters, digits, _ . - "
            "(starting with a letter or digit)"
        )
    return config.name


def infer_url(host: str, port: int, name: str) -> str:
    """The KServe v2 infer URL of the served model, with an address a client on this machine can use."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/v2/models/{name}/infer"


def create_app(pipeline: Pipeline, config: ServeConfig | None = None) -> Any:
    """The ASGI application serving ``pipeline`` (``uvicorn.run(create_app(load(folder)))`` works)."""
    config = config or ServeConfig()
    name = served_name(pipeline.folder, config)
    task = pipeline.task.name
    metrics = Metrics()
    mask_token = getattr(pipeline.tokenizer, "mask_token", None)
    lifecycle = Lifecycle()
    state = {"ready": False, "draining": False}  # kept for callers that read app.state.model_state

    @asynccontextmanager
    async def lifespan(app: Any):
        app.state.batcher = Batcher(pipeline, config, metrics)
        lifecycle.batcher = app.state.batcher
        app.state.batcher.start()
        state["ready"] = lifecycle.ready = True
        yield
        state["ready"] = lifecycle.ready = False
        state["draining"] = lifecycle.draining = True
        await app.state.batcher.stop()

    docs = {"docs_url": "/docs", "openapi_url": "/openapi.json"} if config.docs else {}
    app = FastAPI(
        title=f"pruneofa serve: {name}",
        version=__version__,
        lifespan=lifespan,
        redoc_url=None,
        **({"docs_url": None, "openapi_url": None} | docs),
    )
    app.state.metrics = metrics
    app.state.model_state = state
    app.state.lifecycle = lifecycle

    def begin_drain() -> None:
        """Thread-safe (signal handlers call it): stop being ready, start the graceful-shutdown clock."""
        state["draining"] = lifecycle.draining = True
        batcher = getattr(app.state, "batcher", None)
        if batcher is not None:
            batcher.drain_within(config.graceful_timeout_s)

    app.state.begin_drain = begin_drain

    @app.exception_handler(HttpError)
    async def _http_error(request: Request, err: HttpError) -> JSONResponse:
        return _error(err.status, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _routing_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        headers = dict(err.headers or {})
        if err.status_code == 404:
            message = f"no endpoint {_short(request.url.path)}; see GET /v2, POST /predict, GET /metrics"
        elif err.status_code == 405:
            message = f"{request.method} is not allowed here; use {headers.get('Allow', 'another method')}"
        else:
            message = str(err.detail)
        return _error(err.status_code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = (err.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where}: {first.get('msg', 'invalid')}")

    app.add_middleware(_Guard, metrics=metrics, lifecycle=lifecycle, max_header_bytes=config.max_header_bytes)

    def check_model(model_name: str, version: str | None = None) -> None:
        if model_name != name or version not in (None, "1"):
            raise HttpError(
                404,
                f"unknown model {_short(model_name)}"
                + (f" version {_short(version)}" if version else "")
                + f"; this server has {name!r} version 1",
            )

    def ready() -> bool:
        return lifecycle.ready and not lifecycle.draining

    async def read_json(request: Request) -> Any:
        return parse_json(await _read_body(request, config), config.max_json_depth)

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
        body = await read_json(request)
        items, parameters = _v2_items(task, body, config, mask_token)
        parameters = _check_parameters(task, parameters)
        if task == "feature-extraction":
            parameters.setdefault("pooling", "mean")
            if parameters["pooling"] in (None, "none"):
                raise HttpError(400, "the v2 endpoint returns one vector per text: use pooling mean or cls")
        results = await run(items, parameters)
        response = {"model_name": name, "model_version": "1", "outputs": v2_outputs(task, results)}
        if "id" in body:
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
        body = await read_json(request)
        if not isinstance(body, dict) or "inputs" not in body:
            raise HttpError(400, 'the request must be a JSON object {"inputs": ..., "parameters": {...}}')
        unknown = set(body) - {"inputs", "parameters"}
        if unknown:
            fields = ", ".join(sorted(_short(k, 30) for k in unknown))
            raise HttpError(400, f"unknown field(s) {fields}; send inputs and parameters")
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


# --- the HTTP server ---------------------------------------------------------------------------------


def _protocol_class(config: ServeConfig) -> type:
    """uvicorn's h11 protocol with a deadline for a request's headers.

    uvicorn's keep-alive timer is reset by every byte received, so a client that trickles a header a byte
    at a time would hold its connection (and a file descriptor) for ever. Here the clock starts when the
    connection is ready for a request and is not reset by data: without a complete request line and
    headers in time the connection gets 408 and is closed. The body has its own limit (``_read_body``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    limit = config.header_timeout_s
    late = f"request headers not received within {limit:g} s; send the whole request at once"
    invalid = f"invalid HTTP request (or headers over {config.max_header_bytes} bytes)"

    class _DeadlineH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to bytes that are not HTTP, with the ``{"error"}`` body of every other."""
            self._send_and_close(400, invalid)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            self._arm_header_timer()  # the next request on this connection gets the same deadline
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(limit, self._headers_late)

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return  # closed, or a request is being handled: its body has its own deadline
            if self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE:
                self._send_and_close(408, late)
            self.transport.close()

        def _send_and_close(self, status: int, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(self.conn.send(h11.Response(status_code=status, headers=headers)))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            self.transport.close()

    return _DeadlineH11Protocol


def uvicorn_server(app: Any, config: ServeConfig, on_started: Callable[[int], None] | None = None) -> Any:
    """The uvicorn server for ``app``; ``on_started(port)`` is called once it listens (the bound port:
    ``--port 0`` picks one)."""
    import uvicorn

    class _Server(uvicorn.Server):
        """Marks the model not-ready as soon as a shutdown signal arrives (load balancers stop sending) and
        starts the graceful-shutdown clock of the accepted work."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if on_started is not None and self.started and self.servers:
                on_started(self.servers[0].sockets[0].getsockname()[1])

        def handle_exit(self, sig: int, frame: Any) -> None:
            begin = getattr(app.state, "begin_drain", None)
            if begin is not None:
                begin()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            """uvicorn's, without re-raising the signal after a graceful stop: the command's exit code says
            whether every accepted request was answered."""
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
            http=_protocol_class(config),
            h11_max_incomplete_event_size=config.max_header_bytes,
            # A backstop only: the batcher answers what is left with 503 when graceful_timeout_s runs out,
            # and uvicorn cancels whatever still runs a little later (a stalled client, a slow batch).
            timeout_graceful_shutdown=int(config.graceful_timeout_s) + 10,
            lifespan="on",
        )
    )


def serve(
    folder: str,
    config: ServeConfig,
    *,
    quiet: bool = False,
) -> int:
    """Load ``folder`` and serve it until SIGTERM/SIGINT. Returns 0 when every accepted request was
    answered, 1 when the graceful-shutdown limit made the server drop some (they got 503)."""
    from pruneofa.core.modelio import refuse_custom_code
    from pruneofa.deploy.pipeline import load

    refuse_custom_code(folder)
    config = config.model_copy(update={"name": served_name(folder, config)})
    _check_port(config.host, config.port)
    pipeline = load(
        folder,
        config.runtime,
        hint=config.hint,
        batch_size=config.max_batch,
        sparse_kernels=config.sparse_kernels,
    )
    pipeline(_warmup_input(pipeline))
    app = create_app(pipeline, config)

    def announce(port: int) -> None:
        base = f"http://{f'[{config.host}]' if ':' in config.host else config.host}:{port}"  # as bound
        print(
            f"serving {config.name} ({pipeline.task.name}) on {base} (KServe v2 under /v2, POST /predict, "
            f"GET /metrics); Ctrl-C or SIGTERM stops after answering what was accepted (at most "
            f"{config.graceful_timeout_s:g} s)\n"
            f"infer: POST {infer_url(config.host, port, config.name)}",
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


__all__ = ["ServeConfig", "create_app", "parse_json", "serve", "serve_config", "shutdown_report"]
