"""Helpers for the serving tests: a real server on loopback, a pipeline with a hook, raw HTTP exchanges
(pipelined requests, stalled clients) that an HTTP client library would not send."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pruneofa.deploy.serving import create_app, serve_config, uvicorn_server


@contextmanager
def running(pipeline: Any, **options: Any) -> Iterator[tuple[str, Any, Any]]:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread; stopped like SIGTERM would.

    The model is served as ``pipeline.name`` (the folder's own name, as ``--name`` would set it), the name
    the hardening and fuzz tests address; pass ``name=None`` for the default name that the command derives
    from the folder's manifest (tested in test_serve.py)."""
    options.setdefault("name", pipeline.name)
    config = serve_config(port=0, **options)
    app = create_app(pipeline, config)
    server = uvicorn_server(app, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server, app
    finally:
        server.handle_exit(signal.SIGTERM, None)
        thread.join(60)
        assert not thread.is_alive()


class Hooked:
    """A pipeline that calls ``before(items)`` first (to sleep, or to raise): everything else is the
    wrapped pipeline's."""

    def __init__(self, inner: Any, before: Callable[[list[Any]], None]) -> None:
        self._inner = inner
        self._before = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, items: Any, **options: Any) -> Any:
        self._before(items if isinstance(items, list) else [items])
        return self._inner(items, **options)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_responses(sock: socket.socket, count: int, timeout: float = 60) -> list[tuple[int, dict, bytes]]:
    """Up to ``count`` responses (status, lower-cased headers, body) from one connection; fewer when the
    server closes it first."""
    sock.settimeout(timeout)
    buffer, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buffer += chunk
        out.append((int(lines[0].split()[1]), headers, buffer[:length]))
        buffer = buffer[length:]
    return out


def closed_by_peer(sock: socket.socket, timeout: float = 30) -> bool:
    """Whether the server closed the connection (EOF) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
