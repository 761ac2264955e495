"""Checks of a model folder's files before a library reads them: the config's sizes, the tokenizer's
files and an OpenVINO IR's XML.

transformers, tokenizers and OpenVINO trust their files: ``num_attention_heads: 0`` is a
``ZeroDivisionError`` deep in a model's constructor, ``num_hidden_layers: 1000000`` allocates until the
machine runs out of memory, a tokenizer file nested 100,000 deep is a ``RecursionError``, a truncated IR
an XML parser's traceback. Each check here turns those into one :class:`~pruneofa.core.errors.InputError`
that names the file and the problem, before anything is allocated.
"""

from __future__ import annotations

import os
import xml.parsers.expat
from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.jsonfile import read_json

# --- config.json: sizes --------------------------------------------------------------------------------

# Bounds on the sizes a config gives (inclusive). Far above every encoder pruneofa supports (the largest,
# RemBERT: 32 layers, hidden 1,152, vocabulary 250,300), far below what would exhaust a machine.
SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 1024),
    "hidden_size": (1, 65536),
    "num_attention_heads": (1, 4096),
    "intermediate_size": (1, 1 << 20),
    "hidden_dim": (1, 1 << 20),  # DistilBERT's intermediate size
    "embedding_size": (1, 65536),
    "vocab_size": (1, 1 << 22),
    "max_position_embeddings": (1, 1 << 20),
    "type_vocab_size": (0, 65536),
    "num_hidden_groups": (1, 1024),  # ALBERT
    "inner_group_num": (1, 1024),  # ALBERT
}
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads")
_ALIASES = ("dim", "n_layers", "n_heads")  # DistilBERT's names of the sizes above
_FIX = "fix config.json or use the folder of a real checkpoint"


def _not_whole(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def check_config_json(raw: dict[str, Any], where: str) -> None:
    """Refuse a ``config.json`` (parsed) whose size fields are set but not whole numbers (``1e9``,
    ``"768"``), before transformers reads it (some versions raise their own validation errors)."""
    for name in (*SIZE_BOUNDS, *_ALIASES):
        value = raw.get(name)
        if value is not None and _not_whole(value):
            raise InputError(f"{where}: config.json's {name} is {value!r}, not a whole number; {_FIX}")


def _sizes(config: Any, where: str) -> dict[str, int]:
    """The config's size fields that are set, each checked to be a whole number within its bounds."""
    sizes: dict[str, int] = {}
    for name in SIZE_BOUNDS:
        try:
            value = getattr(config, name, None)
        except Exception:  # an attribute_map pointing at nothing
            value = None
        if value is None:
            if name in _REQUIRED:
                raise InputError(f"{where}: config.json has no {name}; {_FIX}")
            continue
        if _not_whole(value):
            raise InputError(f"{where}: config.json's {name} is {value!r}, not a whole number; {_FIX}")
        sizes[name] = value
    return sizes


def estimated_parameters(sizes: dict[str, int]) -> int:
    """Parameters of a BERT-like encoder with these sizes (embeddings, attention, feed-forward, norms).

    An estimate (families differ in details: ALBERT shares layers, MobileBERT narrows them), close enough
    to say whether the model can fit in memory at all."""
    hidden = sizes["hidden_size"]
    embedding = sizes.get("embedding_size", hidden)
    intermediate = sizes.get("intermediate_size", sizes.get("hidden_dim", 4 * hidden))
    rows = (
        sizes.get("vocab_size", 0) + sizes.get("max_position_embeddings", 0) + sizes.get("type_vocab_size", 0)
    )
    embeddings = rows * embedding + (embedding * hidden if embedding != hidden else 0)
    layer = 4 * hidden * hidden + 2 * hidden * intermediate + 9 * hidden + intermediate
    layers = sizes["num_hidden_layers"]
    if "num_hidden_groups" in sizes:  # ALBERT: the groups' layers are shared by every layer
        layers = min(layers, sizes["num_hidden_groups"] * sizes.get("inner_group_num", 1))
    return embeddings + layers * layer


def memory_bytes() -> int:
    """The memory this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def _describe(parameters: int) -> str:
    size = parameters * 4
    amount = f"{size / 1e9:,.1f} GB" if size >= 1e9 else f"{size / 1e6:,.1f} MB"
    return f"~{parameters:,} parameters, {amount} in FP32"


def check_config(config: Any, where: str) -> None:
    """Refuse a transformers config whose sizes are missing, not whole numbers, out of bounds, with a
    hidden size the attention heads do not divide, or whose model would not fit in this machine's memory
    (the message gives the estimated parameter count). ``where`` names the folder or hub id."""
    sizes = _sizes(config, where)
    positive = {k: max(v, 1) for k, v in sizes.items()}
    figure = _describe(estimated_parameters(positive))
    for name, value in sizes.items():
        low, high = SIZE_BOUNDS[name]
        if not low <= value <= high:
            raise InputError(
                f"{where}: config.json's {name} is {value:,}, outside [{low:,}, {high:,}] "
                f"(the config describes {figure}); {_FIX}"
            )
    hidden, heads = sizes["hidden_size"], sizes["num_attention_heads"]
    if hidden % heads:
        raise InputError(
            f"{where}: config.json's hidden_size {hidden} is not a multiple of num_attention_heads {heads}; "
            f"{_FIX}"
        )
    parameters = estimated_parameters(sizes)
    available = memory_bytes()
    if parameters * 4 > available:
        raise InputError(
            f"{where}: config.json describes {_describe(parameters)}, more than this machine's "
            f"{available / 1e9:,.1f} GB of memory; {_FIX}"
        )


# --- tokenizer files ------------------------------------------------------------------------------------

TOKENIZER_BYTES = 64 << 20  # the largest common tokenizer.json (Gemma's) is ~34 MB
# The top-level fields the tokenizers library reads; an unknown one is a parse error deep inside it.
TOKENIZER_FIELDS = frozenset(
    {
        "version",
        "truncation",
        "padding",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "model",
        "post_processor",
        "decoder",
    }
)
# The small JSON files AutoTokenizer reads besides tokenizer.json (config.json: for the tokenizer's class).
_JSON_TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "config.json",
)
_VOCABULARY_FILES = ("vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model")
_TOKENIZER_FIX = "copy the tokenizer files of the base model into the folder"


def check_tokenizer_files(folder: str | os.PathLike[str]) -> None:
    """Refuse a folder whose tokenizer files a tokenizer library should not be given: any over
    :data:`TOKENIZER_BYTES` (the JSON files AutoTokenizer reads besides it, ``config.json`` included, over
    16 MiB), not regular files, not UTF-8 JSON, nested deeper than 64 levels, not JSON objects, or a
    ``tokenizer.json`` without the fields tokenizers reads. Files that are absent are left to the library
    (it says which it needs)."""
    folder = Path(folder)
    tokenizer = folder / "tokenizer.json"
    if tokenizer.exists():
        content = read_json(tokenizer, limit=TOKENIZER_BYTES, fix=_TOKENIZER_FIX)
        if not isinstance(content, dict):
            raise InputError(
                f"{tokenizer} is a JSON {type(content).__name__}, not an object; {_TOKENIZER_FIX}"
            )
        unknown = sorted(set(content) - TOKENIZER_FIELDS)
        if unknown:
            raise InputError(
                f"{tokenizer} has the unknown field {unknown[0]!r} (tokenizers reads "
                f"{', '.join(sorted(TOKENIZER_FIELDS))}); {_TOKENIZER_FIX}"
            )
        if not isinstance(content.get("model"), dict):
            raise InputError(f'{tokenizer} has no "model" object; {_TOKENIZER_FIX}')
    for name in _JSON_TOKENIZER_FILES:
        if (folder / name).exists():
            fix = _FIX if name == "config.json" else _TOKENIZER_FIX
            if not isinstance(read_json(folder / name, fix=fix), dict):
                raise InputError(f"{folder / name} is not a JSON object; {fix}")
    for name in _VOCABULARY_FILES:
        path = folder / name
        if path.exists() and (not path.is_file() or path.stat().st_size > TOKENIZER_BYTES):
            raise InputError(f"{path} is not a regular file of at most 64 MiB; {_TOKENIZER_FIX}")


# --- OpenVINO IR ----------------------------------------------------------------------------------------

IR_XML_BYTES = 256 << 20  # an IR's XML describes the graph; its weights are in the .bin
IR_MAX_DEPTH = 256


def check_ir_xml(path: str | os.PathLike[str]) -> None:
    """Refuse an OpenVINO IR ``.xml`` that is not a regular file of at most :data:`IR_XML_BYTES`, not
    well-formed XML (a truncated file), declares a DTD or entities, nests deeper than
    :data:`IR_MAX_DEPTH` or whose root is not ``<net>``: read as a stream, never held whole."""
    path = Path(path)
    fix = "re-export the folder (pruneofa export)"
    try:
        stat = path.stat()
    except OSError as err:
        raise InputError(f"cannot read the IR {path} ({err.strerror or err}); {fix}") from err
    if not path.is_file():
        raise InputError(f"the IR {path} is not a regular file; {fix}")
    if stat.st_size > IR_XML_BYTES:
        raise InputError(f"the IR {path} is over {IR_XML_BYTES >> 20} MiB of XML; {fix}")
    parser = xml.parsers.expat.ParserCreate()
    state = {"depth": 0, "root": None}

    def start(name: str, _attributes: Any) -> None:
        state["depth"] += 1
        if state["root"] is None:
            state["root"] = name
            if name != "net":
                raise InputError(f"the IR {path} starts with <{name}>, not <net>; {fix}")
        if state["depth"] > IR_MAX_DEPTH:
            raise InputError(f"the IR {path} nests more than {IR_MAX_DEPTH} elements deep; {fix}")

    def end(_name: str) -> None:
        state["depth"] -= 1

    def declaration(*_args: Any) -> None:
        raise InputError(f"the IR {path} declares a DTD or entities, which an IR never does; {fix}")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = declaration
    parser.EntityDeclHandler = declaration
    try:
        with path.open("rb") as handle:
            read = 0
            while piece := handle.read(1 << 20):
                read += len(piece)
                if read > IR_XML_BYTES:
                    raise InputError(f"the IR {path} is over {IR_XML_BYTES >> 20} MiB of XML; {fix}")
                parser.Parse(piece, False)
            parser.Parse(b"", True)
    except xml.parsers.expat.ExpatError as err:
        reason = xml.parsers.expat.ErrorString(err.code)
        raise InputError(
            f"the IR {path} is not well-formed XML ({reason} at line {err.lineno}, column {err.offset}); {fix}"
        ) from None
    except OSError as err:
        raise InputError(f"cannot read the IR {path} ({err.strerror or err}); {fix}") from err
