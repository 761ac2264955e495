"""HTTP hardening: the outermost ASGI layer (every response counted, an unexpected exception a complete
500), and uvicorn's h11 protocol and server with deadlines and a graceful, reported shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving.batching import Lifecycle, Metrics
from pruneofa.deploy.serving.errors import CLOSE, INTERNAL_ERROR, error_response

logger = logging.getLogger("pruneofa.serve")


class Guard:
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

        async def send_counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            size = _header_bytes(scope)
            if size > self.max_header_bytes:  # h11 bounds only headers that arrive in pieces
                message = (
                    f"request line and headers are {size} bytes, over the limit of {self.max_header_bytes}"
                )
                await error_response(431, message, CLOSE)(scope, receive, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        except ClientDisconnect:
            status.append(499)  # the client went away; there is no one to answer
        except asyncio.CancelledError:
            self.lifecycle.cut_off += 1
            if not status:
                status.append(503)
                with contextlib.suppress(Exception):
                    await error_response(503, "the server shut down before answering; retry", CLOSE)(
                        scope, receive, send
                    )
            raise
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if status:  # the response had started: nothing coherent can follow on this connection
                raise
            status.append(500)
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status[0] if status else 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def _header_bytes(scope: dict) -> int:
    request_line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return request_line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


PROTOCOL_ENDPOINT = "protocol"  # the /metrics endpoint label of answers sent before any route was matched


def protocol_class(config: ServeConfig, metrics: Metrics | None = None) -> type:
    """uvicorn's h11 protocol with a deadline for a request's headers, strict request framing, and its own
    answers (400, 408) counted in ``metrics`` under the endpoint ``protocol``.

    uvicorn's keep-alive timer is reset by every byte received, so a client that trickles a header a byte
    at a time would hold its connection (and a file descriptor) for ever. Here the clock starts when the
    connection is ready for a request and is not reset by data: without a complete request line and
    headers in time the connection gets 408 and is closed. The body has its own limit (``_read_body``).

    A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused with 400 and the connection
    closed (RFC 9112 §6.3: such framing is a request-smuggling attempt, and the server must close the
    connection after responding); h11 alone would read it by its ``Transfer-Encoding`` and keep the
    connection, answering the bytes that follow as a new request."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    limit = config.header_timeout_s
    late = f"request headers not received within {limit:g} s; send the whole request at once"
    invalid = f"invalid HTTP request (or headers over {config.max_header_bytes} bytes)"

    ambiguous = (
        "a request with both Content-Length and Transfer-Encoding is ambiguous (RFC 9112 §6.3); "
        "send one of them"
    )

    class _StrictConnection(h11.Connection):
        """h11's server connection, refusing a request whose body length is framed two ways."""

        refusal: str | None = None

        def next_event(self) -> Any:
            event = super().next_event()
            if isinstance(event, h11.Request):
                names = {name.lower() for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    self.refusal = ambiguous
                    raise h11.RemoteProtocolError(ambiguous, error_status_hint=400)
            return event

    class _DeadlineH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            size = self.config.h11_max_incomplete_event_size or config.max_header_bytes
            self.conn = _StrictConnection(h11.SERVER, size)

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to bytes that are not HTTP, with the ``{"error"}`` body of every other."""
            self._send_and_close(400, getattr(self.conn, "refusal", None) or invalid)

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
            if metrics is not None:
                metrics.requests.labels(PROTOCOL_ENDPOINT, str(status)).inc()
            body = json.dumps({"error": message}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            reason = http.HTTPStatus(status).phrase.encode()
            with contextlib.suppress(h11.LocalProtocolError):
                response = h11.Response(status_code=status, headers=headers, reason=reason)
                self.transport.write(self.conn.send(response))
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
            http=protocol_class(config, getattr(app.state, "metrics", None)),
            h11_max_incomplete_event_size=config.max_header_bytes,
            # A backstop only: the batcher answers what is left with 503 when graceful_timeout_s runs out,
            # and uvicorn cancels whatever still runs a little later (a stalled client, a slow batch).
            timeout_graceful_shutdown=int(config.graceful_timeout_s) + 10,
            lifespan="on",
        )
    )
