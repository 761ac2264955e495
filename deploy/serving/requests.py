"""Request bodies from untrusted clients: size, arrival time, JSON syntax, nesting depth and Unicode.

Every problem is an :class:`HttpError` with one line that names it (400, 408 or 413) before anything
reaches the runtime."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request

from pruneofa.core.errors import first_line
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving.errors import CLOSE, HttpError, short


async def read_body(request: Request, config: ServeConfig, *, allow_empty: bool = False) -> bytes:
    """The body, refused as soon as it is known to be too large (413) or too slow to arrive (408); an
    empty one is refused too unless ``allow_empty`` (the repository index's body is optional)."""
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
    if not body and not allow_empty:
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
            name = part if part.isascii() and part.isidentifier() else short(part, 30)
            out += f".{name}" if out else name
    return out or "the body"


def check_text(text: Any, what: str, config: ServeConfig) -> str:
    if not isinstance(text, str):
        raise HttpError(400, f"{what} must be a string, got {type(text).__name__}")
    if len(text) > config.max_text_chars:
        raise HttpError(413, f"{what} has {len(text)} characters, over the limit of {config.max_text_chars}")
    return text
