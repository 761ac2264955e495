"""Reading a JSON file that came from elsewhere, with bounds: size, nesting depth, valid UTF-8 and JSON.

Python's parser recurses once per nesting level: a document nested 100,000 deep raises
``RecursionError`` and, where a library has raised the interpreter's recursion limit, overflows the C
stack. The depth is therefore counted on the text before it is parsed, and the file is read with a
bound (:func:`~pruneofa.core.fsutil.read_bounded`), so that neither a deep nor a huge file costs more
than the bound. Every problem is one :class:`~pruneofa.core.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import read_bounded

MAX_DEPTH = 64  # every JSON file of a model folder nests under ~10 levels
METADATA_BYTES = 16 << 20  # config.json, pruneofa.json, tokenizer_config.json, ...

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth_over(text: str, limit: int) -> bool:
    """True when ``text`` opens more than ``limit`` arrays/objects inside one another (strings skipped).

    A cheap scan, no parse: strings are dropped first so that brackets inside them do not count."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def read_json(
    path: str | os.PathLike[str],
    *,
    limit: int = METADATA_BYTES,
    max_depth: int = MAX_DEPTH,
    fix: str = "fix or replace the file",
) -> Any:
    """The parsed content of ``path``; a file over ``limit`` bytes, not a regular file, not UTF-8, nested
    deeper than ``max_depth`` or not JSON is an :class:`InputError` that names it and ends with ``fix``."""
    data = read_bounded(path, limit, what="JSON file", fix=fix)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not valid JSON (not UTF-8 at byte {err.start}); {fix}") from None
    if nesting_depth_over(text, max_depth):
        raise InputError(f"{path} nests more than {max_depth} levels deep, which no model file does; {fix}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{path} is not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}); {fix}"
        ) from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{path} is not valid JSON ({str(err).splitlines()[0]}); {fix}") from None
