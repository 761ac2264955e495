"""Request batching and the server's Prometheus metrics.

Concurrent requests are batched: a single worker takes the first waiting request, collects more for up to
``max_delay_ms`` or until ``max_batch`` texts, and runs them as one padded batch (requests with different
parameters run as separate batches). The queue is bounded: when ``max_queue`` requests wait, new ones get
503 with ``Retry-After`` instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pruneofa.core.inference import Pipeline
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving.errors import CLOSE, HttpError

logger = logging.getLogger("pruneofa.serve")


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
        options = self.pipeline.task.serving_options(parameters, int(self.pipeline.max_length))
        return list(self.pipeline(items, **options))


@dataclass
class Lifecycle:
    """What the server promised and kept: readiness, and at shutdown how many accepted requests were
    answered and how many the graceful-shutdown limit forced it to drop."""

    ready: bool = False
    draining: bool = False
    cut_off: int = 0  # cancelled by uvicorn's own backstop after the limit (should stay 0)
    batcher: Batcher | None = None

    @property
    def serving(self) -> bool:
        """Ready for inference: started and not shutting down (``/v2/health/ready``)."""
        return self.ready and not self.draining

    @property
    def accepted(self) -> int:
        """Inference requests taken into the queue (refusals with 503 or 4xx are not accepted)."""
        return self.batcher.accepted if self.batcher is not None else 0

    @property
    def dropped(self) -> int:
        return self.cut_off + (self.batcher.dropped if self.batcher is not None else 0)
