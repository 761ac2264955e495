"""What a refused request carries back to the client: a status, one line, and the headers it needs."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# A response after which the rest of the request may still be on the wire (too large, too slow): the
# connection is closed rather than read to the end, and the client is told so.
CLOSE = {"Connection": "close"}
INTERNAL_ERROR = "internal error; the server logged the details"


class HttpError(Exception):
    """A request the server refuses: ``status``, a one-line ``message`` and response ``headers``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def short(value: Any, width: int = 60) -> str:
    """A client's value for a one-line message: repr (ASCII-safe escapes), shortened."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The body of every refusal: ``{"error": "one line"}``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)
