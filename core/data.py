"""Loading a task's examples from local files or the Hugging Face hub, into two small record types.

Every later stage (fine-tuning, calibration, validation) takes ``--data``: a GLUE task folder, one
file (GLUE ``.tsv``, ``.csv``, ``.json``/``.jsonl`` records, the official SQuAD JSON, plain ``.txt``
for MLM), or a hub dataset id. Local files are read with the standard library, the way the original
files are laid out, so that the toolkit works offline and label ids mean what they mean in HF ``glue``.
A bad file is the commonest user mistake here, so each problem (missing file, wrong layout, bad row,
unknown label, …) is an :class:`~pruneofa.core.errors.InputError` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
import random
import re
import reprlib
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from pruneofa.core.errors import InputError, first_line
from pruneofa.core.tasks import TaskSpec

Split = Literal["train", "dev"]
_TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")
_TEXT_SUFFIXES = (".txt", ".raw", ".tokens")  # .raw and .tokens: WikiText
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(:[\w.\-]+)?$")  # optional ":config"


@dataclass(frozen=True)
class TextExample:
    """One classification / regression / MLM example; ``source`` is ``file:line`` for messages."""

    texts: tuple[str, ...]
    label: int | float | None
    source: str


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question with its gold answers (``answer_starts`` are character offsets in context)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    title: str


Example = TextExample | QAExample


# --- GLUE TSV layouts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TsvLayout:
    """Where a GLUE file keeps its texts and label (header names; CoLA, which has no header: None)."""

    folder: str
    text: tuple[str, ...] | None
    label: str | None


# As written by the standard download_glue_data.py. Columns are found by header name, which is the same
# as the positions the GLUE papers document (STS-B sentence1/2 = columns 7/8, score last; MNLI
# sentence1/2 = columns 8/9, gold_label last) but survives the extra label1..label5 columns of MNLI dev.
_GLUE_TSV: dict[str, _TsvLayout] = {
    "cola": _TsvLayout("CoLA", None, None),  # no header: source, label, original mark, sentence
    "sst2": _TsvLayout("SST-2", ("sentence",), "label"),
    "mrpc": _TsvLayout("MRPC", ("#1 String", "#2 String"), "Quality"),
    "qqp": _TsvLayout("QQP", ("question1", "question2"), "is_duplicate"),
    "stsb": _TsvLayout("STS-B", ("sentence1", "sentence2"), "score"),
    "mnli": _TsvLayout("MNLI", ("sentence1", "sentence2"), "gold_label"),
    "mnli-mm": _TsvLayout("MNLI", ("sentence1", "sentence2"), "gold_label"),
    "qnli": _TsvLayout("QNLI", ("question", "sentence"), "label"),
    "rte": _TsvLayout("RTE", ("sentence1", "sentence2"), "label"),
    "wnli": _TsvLayout("WNLI", ("sentence1", "sentence2"), "label"),
}
_COLA_COLUMNS, _COLA_LABEL, _COLA_SENTENCE = 4, 1, 3


def _split_file_names(task: TaskSpec, split: Split) -> list[str]:
    """The file names a data folder is searched for, in order of preference."""
    if task.kind == "question-answering":
        stems = ("dev-v1.1", "dev") if split == "dev" else ("train-v1.1", "train")
        return [stem + suffix for stem in stems for suffix in (".json", ".jsonl")]
    if task.kind == "masked-lm":  # WikiText's own names first; otherwise every *.txt (see _folder_files)
        if split == "dev":
            return ["wiki.valid.raw", "wiki.valid.tokens", "valid.txt", "validation.txt", "dev.txt"]
        return ["wiki.train.raw", "wiki.train.tokens", "train.txt"]
    stem = (
        "train"
        if split == "train"
        else {"mnli": "dev_matched", "mnli-mm": "dev_mismatched"}.get(task.name, "dev")
    )
    return [stem + suffix for suffix in _TABLE_SUFFIXES]


# --- small helpers ---------------------------------------------------------------------------------


_SHORT_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxdict = 2, 4, 4
_MAX_JSON_DEPTH = 100  # the deepest legitimate layout (official SQuAD) nests 7 levels


def _show(value: Any, width: int = 40) -> str:
    """A value for a one-line message: repr (which escapes newlines), shortened; containers only to two
    levels (a deeply nested value must not exhaust the stack just to be named)."""
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else _SHORT_REPR.repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _decode_error(path: Path, err: UnicodeDecodeError | None = None) -> InputError:
    """The first byte that is not UTF-8, by line and offset in the file.

    A text stream reports offsets within its internal chunk, not the file, so the file is read again as
    bytes to find the exact place (only on this error path)."""
    found = _first_bad_byte(path)
    if found is None:
        return InputError(f"{path}: not UTF-8 text; convert the file to UTF-8")
    line, offset, byte = found
    return InputError(
        f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x} at offset {offset}); convert the file to UTF-8"
    )


def _first_bad_byte(path: Path, piece_size: int = 1 << 20) -> tuple[int, int, int] | None:
    """(line, offset, byte) of the first invalid UTF-8 byte, read a piece at a time; a character split
    between two pieces is carried over to the next one."""
    line, offset, carry = 1, 0, b""
    with path.open("rb") as handle:
        while True:
            piece = handle.read(piece_size)
            data = carry + piece
            if not data:
                return None
            try:
                data.decode("utf-8")
                consumed, carry = len(data), b""
            except UnicodeDecodeError as err:
                if piece and err.end == len(data) and err.reason == "unexpected end of data":
                    consumed, carry = err.start, data[err.start :]
                else:
                    return line + data.count(b"\n", 0, err.start), offset + err.start, data[err.start]
            line += data.count(b"\n", 0, consumed)
            offset += consumed


def _check_unicode(text: str, what: str) -> str:
    """Text decoded from JSON can hold a lone surrogate (``"\\ud800"``): valid JSON, invalid Unicode, and
    a crash in tokenizers and writers later; refused here, where the file and line are known."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(
            f"{what} holds a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}, which is "
            "not valid Unicode; fix the text"
        ) from None
    return text


def _too_deep(path: Path, text: str, line_offset: int = 0) -> InputError:
    """A JSON document nested deeper than the parser (or any sane data file) goes: where it gets there."""
    depth, tokens = 0, re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
    for match in tokens.finditer(text):
        token = match.group()
        depth += 1 if token in ("[", "{") else -1 if token in ("]", "}") else 0
        if depth > _MAX_JSON_DEPTH:
            line = line_offset + text.count("\n", 0, match.start()) + 1
            return InputError(
                f"{path}:{line}: JSON nested more than {_MAX_JSON_DEPTH} levels deep; examples are flat "
                "records, fix the file"
            )
    return InputError(f"{path}: JSON nested too deeply to read; fix the file")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise _decode_error(path, err) from err


def _parse_label(task: TaskSpec, raw: Any, where: str) -> int | float:
    """A label id (classification) or score (regression) from a file cell or a record value."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InputError(f"{where}: the row has no label; every {task.name} train/dev row needs one")
    if task.kind == "regression":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InputError(
                f"{where}: score {_show(raw)} is not a number; {task.name} labels are numeric similarity scores"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{where}: score {_show(raw)} is not a finite number; fix the row")
        return value
    allowed = f"{', '.join(task.labels)} (or ids 0..{len(task.labels) - 1})"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InputError(f"{where}: unknown label {_show(raw)} for task {task.name}; use one of {allowed}")
    if isinstance(raw, str):
        text = raw.strip()
        if text in task.labels:
            return task.labels.index(text)
        if not re.fullmatch(r"-?\d+", text):
            raise InputError(
                f"{where}: unknown label {_show(raw)} for task {task.name}; use one of {allowed}"
            )
        raw = int(text)
    if raw == -1:
        raise InputError(
            f"{where}: label -1 marks an unlabelled (test) row; use the train or dev split, which have labels"
        )
    if not 0 <= raw < len(task.labels):
        raise InputError(f"{where}: unknown label {raw} for task {task.name}; use one of {allowed}")
    return raw


def _text(value: Any, column: str, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: column {column!r} holds {type(value).__name__}, not text; fix the record")
    return _check_unicode(value, f"{where}: column {column!r}")


def _check_columns(
    present: Sequence[str], needed: Sequence[str], where: str, task: TaskSpec, hint: str = ""
) -> None:
    missing = [name for name in needed if name not in present]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        have = ", ".join(repr(name) for name in present) or "none"
        raise InputError(
            f"{where}: missing column {names} for task {task.name} (the columns are {have}); "
            f"{hint or 'name the right ones with --text-columns / --label-column'}"
        )


# --- delimited files -------------------------------------------------------------------------------


def _rows(path: Path, delimiter: str) -> Generator[tuple[int, list[str]], None, None]:
    """(line number, fields) of every non-blank row; GLUE TSVs are read with quoting off."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
            for fields in reader:
                if fields and any(fields):
                    yield reader.line_num, fields
    except UnicodeDecodeError as err:
        raise _decode_error(path, err) from err
    except csv.Error as err:
        raise InputError(
            f"{path}: cannot parse the file as {'TSV' if delimiter == chr(9) else 'CSV'} ({err})"
        ) from err


def _check_width(path: Path, line: int, fields: list[str], expected: int, kind: str) -> None:
    if len(fields) != expected:
        raise InputError(
            f"{path}:{line}: {len(fields)} fields, expected {expected} like the header; "
            f"fix the row (fields must be {kind}-separated{', without quoting' if kind == 'tab' else ''})"
        )


def _named_table(
    path: Path,
    task: TaskSpec,
    text_columns: Sequence[str],
    label_column: str | None,
    delimiter: str,
    *,
    hint: str = "",
) -> Iterator[TextExample]:
    kind = "tab" if delimiter == "\t" else "comma"
    rows = _rows(path, delimiter)
    with closing(rows):
        first = next(rows, None)
        if first is None:
            raise InputError(f"{path} is empty; give a file with a header row and data rows")
        header_line, header = first
        needed = [*text_columns, *([label_column] if label_column else [])]
        _check_columns(header, needed, f"{path}:{header_line}", task, hint)
        text_at = [header.index(name) for name in text_columns]
        label_at = header.index(label_column) if label_column else None
        seen = False
        for line, fields in rows:
            seen = True
            _check_width(path, line, fields, len(header), kind)
            where = f"{path}:{line}"
            label = _parse_label(task, fields[label_at], where) if label_at is not None else None
            yield TextExample(tuple(fields[i] for i in text_at), label, where)
        if not seen:
            raise InputError(f"{path} has a header but no data rows; give a file with examples")


def _glue_tsv(path: Path, task: TaskSpec, layout: _TsvLayout) -> Iterator[TextExample]:
    if layout.text is None or layout.label is None:
        return _cola_tsv(path, task)
    with closing(_rows(path, "\t")) as rows:
        header = next(rows, (0, []))[1]
    glue_names = [*layout.text, layout.label]
    hf_names = [*task.text_columns, "label"]
    if not all(n in header for n in glue_names) and all(n in header for n in hf_names):
        # Files saved from HF `glue` (e.g. with pandas) carry the HF column names instead.
        return _named_table(path, task, task.text_columns, "label", "\t")
    hint = f"is this a GLUE {layout.folder} file? (its header names {', '.join(glue_names)})"
    return _named_table(path, task, layout.text, layout.label, "\t", hint=hint)


def _cola_tsv(path: Path, task: TaskSpec) -> Iterator[TextExample]:
    seen = False
    for line, fields in _rows(path, "\t"):
        if line == 1 and fields[:2] == ["index", "sentence"]:
            raise InputError(
                f"{path}:1: this is the unlabelled CoLA test file (header 'index, sentence'); give train.tsv or dev.tsv"
            )
        if len(fields) != _COLA_COLUMNS:
            raise InputError(
                f"{path}:{line}: {len(fields)} fields, expected {_COLA_COLUMNS} (source, label, mark, sentence) "
                "as in GLUE CoLA files, which have no header; fix the row"
            )
        seen = True
        where = f"{path}:{line}"
        yield TextExample((fields[_COLA_SENTENCE],), _parse_label(task, fields[_COLA_LABEL], where), where)
    if not seen:
        raise InputError(f"{path} is empty; give a GLUE CoLA train.tsv or dev.tsv")


# --- JSON ------------------------------------------------------------------------------------------


def _json_array_lines(text: str) -> Iterator[int]:
    """The 1-based line on which each element of a top-level JSON array starts (text already valid)."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"[ \t\r\n]*")

    def skip(pos: int) -> int:
        found = whitespace.match(text, pos)  # the pattern matches the empty string: never None
        return found.end() if found else pos

    pos = skip(0) + 1  # past "["
    line, counted = 1, 0
    while True:
        pos = skip(pos)
        if text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        yield line
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        if text[pos] == ",":
            pos += 1


def _json_lines(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    # split on "\n" only: str.splitlines would also split inside strings at U+2028 and friends
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(
                f"{path}:{number}: not valid JSON ({err.msg}); each line must be one JSON object"
            ) from err
        except RecursionError:
            raise _too_deep(path, raw, number - 1) from None
        except ValueError as err:  # e.g. an integer with more digits than Python converts
            raise InputError(f"{path}:{number}: not valid JSON ({first_line(err)}); fix the line") from None


def _json_document(path: Path) -> tuple[Any, list[tuple[str, Any]] | None]:
    """(document, None) for a single JSON value, or (None, records) for JSON lines."""
    text = _read_text(path)
    if not text.strip():
        raise InputError(f"{path} is empty; give a file with examples")
    if path.suffix.lower() == ".jsonl":
        return None, list(_json_lines(path, text))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines saved as .json (datasets' to_json does this)
            return None, list(_json_lines(path, text))
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); fix the file") from err
    except RecursionError:
        raise _too_deep(path, text) from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise InputError(f"{path}: not valid JSON ({first_line(err)}); fix the file") from None
    if isinstance(document, list):
        return None, [
            (f"{path}:{line}", record) for line, record in zip(_json_array_lines(text), document, strict=True)
        ]
    return document, None


def _records(path: Path) -> list[tuple[str, Any]]:
    document, records = _json_document(path)
    if records is None:
        got = f"an object ({', '.join(document)})" if isinstance(document, dict) else type(document).__name__
        raise InputError(
            f"{path}: expected a JSON array of records or JSON lines, got {got}; write one object per example"
        )
    if not records:
        raise InputError(f"{path} holds no records; give a file with examples")
    return records


# Public readers for callers that need a data file's other columns, parsed exactly as load_examples
# parses them (same line numbers, same quoting), e.g. validate's --slice-by.
def table_rows(path: Path, delimiter: str) -> Generator[tuple[int, list[str]], None, None]:
    """(line number, fields) of every non-blank row of a TSV (``\\t``) or CSV (``,``) file."""
    return _rows(path, delimiter)


def json_document(path: Path) -> tuple[Any, list[tuple[str, Any]] | None]:
    """(document, None) for a single JSON value, or (None, [("file:line", record), ...]) for JSON lines
    or a JSON array."""
    return _json_document(path)


def json_records(path: Path) -> list[tuple[str, Any]]:
    """[("file:line", record), ...] of a JSON array or JSON-lines file (one-line error otherwise)."""
    return _records(path)


def _record_examples(
    records: Iterable[tuple[str, Any]], task: TaskSpec, text_columns: Sequence[str], label_column: str | None
) -> Iterator[TextExample]:
    needed = [*text_columns, *([label_column] if label_column else [])]
    for where, record in records:
        if not isinstance(record, Mapping):
            raise InputError(
                f"{where}: a record must be a JSON object, got {type(record).__name__}; fix the file"
            )
        _check_columns(list(record), needed, where, task)
        texts = tuple(_text(record[name], name, where) for name in text_columns)
        label = _parse_label(task, record[label_column], where) if label_column else None
        yield TextExample(texts, label, where)


# --- SQuAD -----------------------------------------------------------------------------------------


def _need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str, fix: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise InputError(f"{where} has no {key!r}; {fix}")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise InputError(f"{where}: {key!r} is {type(value).__name__}, not {expected}; {fix}")
    return value


def _squad_official(path: Path, document: Any) -> Iterator[QAExample]:
    """data → paragraphs → qas; locations are JSON paths, because the official files are one line."""
    fix = (
        "expected the official SQuAD v1.1 JSON (data > paragraphs > context and qas > id, question, answers)"
    )
    articles = _need(document, "data", list, str(path), fix)
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        title = article.get("title", "") if isinstance(article, Mapping) else ""
        for p, paragraph in enumerate(_need(article, "paragraphs", list, where, fix)):
            where_p = f"{where}.paragraphs[{p}]"
            context = _need(paragraph, "context", str, where_p, fix)
            for q, qa in enumerate(_need(paragraph, "qas", list, where_p, fix)):
                where_q = f"{where_p}.qas[{q}]"
                qid = str(_need(qa, "id", (str, int), where_q, fix))
                where_q += f" (id {qid})"
                question = _need(qa, "question", str, where_q, fix)
                answers = _need(qa, "answers", list, where_q, fix)
                texts, starts = [], []
                for n, answer in enumerate(answers):
                    texts.append(_need(answer, "text", str, f"{where_q}.answers[{n}]", fix))
                    starts.append(_need(answer, "answer_start", int, f"{where_q}.answers[{n}]", fix))
                yield _qa_example(qid, question, context, texts, starts, str(title), where_q)


def _qa_example(
    qid: str, question: str, context: str, texts: Sequence[str], starts: Sequence[int], title: str, where: str
) -> QAExample:
    if not texts:
        raise InputError(
            f"{where} has no answers; SQuAD v1.1 questions all have one (v2 unanswerable ones are not supported)"
        )
    if len(texts) != len(starts):
        raise InputError(
            f"{where}: {len(texts)} answer texts but {len(starts)} answer_start offsets; fix the record"
        )
    if not all(isinstance(s, str) for s in texts) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in starts
    ):
        raise InputError(
            f"{where}: answers must be texts with whole-number answer_start offsets; fix the record"
        )
    for what, value in (
        ("id", qid),
        ("question", question),
        ("context", context),
        ("title", title),
        *(("answer", s) for s in texts),
    ):
        _check_unicode(value, f"{where}: {what}")
    return QAExample(qid, question, context, tuple(texts), tuple(starts), title)


def _squad_records(
    records: Iterable[tuple[str, Any]], task: TaskSpec, columns: Sequence[str]
) -> Iterator[QAExample]:
    """HF-style flat records: id, title, question, context, answers {text: [...], answer_start: [...]}."""
    question_col, context_col = columns
    for where, record in records:
        if not isinstance(record, Mapping):
            raise InputError(
                f"{where}: a record must be a JSON object, got {type(record).__name__}; fix the file"
            )
        _check_columns(list(record), ["id", question_col, context_col, "answers"], where, task)
        answers = record["answers"]
        if (
            isinstance(answers, Mapping)
            and isinstance(answers.get("text"), list)
            and isinstance(answers.get("answer_start"), list)
        ):
            texts, starts = list(answers["text"]), list(answers["answer_start"])
        elif isinstance(answers, list) and all(isinstance(a, Mapping) and "text" in a for a in answers):
            texts, starts = [a["text"] for a in answers], [a.get("answer_start", -1) for a in answers]
        else:
            raise InputError(
                f"{where}: 'answers' must be {{text: [...], answer_start: [...]}} or a list of {{text, answer_start}}; fix the record"
            )
        yield _qa_example(
            str(record["id"]),
            _text(record[question_col], question_col, where),
            _text(record[context_col], context_col, where),
            texts,
            starts,
            str(record.get("title", "")),
            where,
        )


def _squad_file(path: Path, task: TaskSpec, columns: Sequence[str]) -> Iterator[QAExample]:
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise InputError(
            f"{path}: SQuAD data must be the official JSON (dev-v1.1.json) or JSON lines records; convert the file"
        )
    document, records = _json_document(path)
    if records is not None:
        return _squad_records(records, task, columns)
    return _squad_official(path, document)


# --- plain text ------------------------------------------------------------------------------------


def _text_lines(path: Path) -> Iterator[TextExample]:
    """One example per non-blank line (CRLF and a BOM are fine; surrounding whitespace is dropped)."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped:
                    yield TextExample((stripped,), None, f"{path}:{number}")
    except UnicodeDecodeError as err:
        raise _decode_error(path, err) from err


# --- choosing a reader -----------------------------------------------------------------------------


def _file_examples(
    path: Path, task: TaskSpec, text_columns: Sequence[str] | None, label_column: str | None
) -> Iterator[Example]:
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty; give a file with examples")
    if task.kind == "question-answering":
        return _squad_file(path, task, text_columns or task.text_columns)
    columns = tuple(text_columns or task.text_columns)
    label = label_column or task.label_column
    if suffix in _TEXT_SUFFIXES:
        if task.kind != "masked-lm":
            raise InputError(
                f"{path}: plain text files are for the mlm task; give {task.name} data as .tsv, .csv, .json or .jsonl"
            )
        return _text_lines(path)
    if suffix == ".tsv":
        layout = _GLUE_TSV.get(task.name)
        if layout is not None and text_columns is None and label_column is None:
            return _glue_tsv(path, task, layout)
        return _named_table(path, task, columns, label, "\t")
    if suffix == ".csv":
        return _named_table(path, task, columns, label, ",")
    if suffix in (".json", ".jsonl"):
        return _record_examples(_records(path), task, columns, label)
    accepted = ".tsv, .csv, .json, .jsonl" + (", .txt, .raw" if task.kind == "masked-lm" else "")
    raise InputError(f"{path}: unsupported file type {suffix or '(none)'!r}; give one of {accepted}")


def _folder_files(folder: Path, task: TaskSpec, split: Split) -> list[Path]:
    names = _split_file_names(task, split)
    for name in names:
        if (folder / name).is_file():
            return [folder / name]
    layout = _GLUE_TSV.get(task.name)
    if layout is not None and (folder / layout.folder).is_dir():  # the GLUE root, e.g. glue_data/
        return _folder_files(folder / layout.folder, task, split)
    if task.kind == "masked-lm":
        # A folder of books: every text file, except the other split's own file (no train text in dev).
        other = set(_split_file_names(task, "train" if split == "dev" else "dev"))
        texts = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES and p.name not in other
        )
        if texts:
            return texts
        names.append("any *.txt, *.raw or *.tokens")
    raise InputError(
        f"{folder} has no {split} file for task {task.name} (looked for {', '.join(names)}); pass the file itself"
    )


def looks_like_hub_id(data: str) -> bool:
    """Whether ``data`` (not an existing path) can be a hub dataset id: ``name`` or ``org/name``, no file
    suffix, not starting like a path."""
    if data.startswith((".", "/", "~")) or data.count("/") > 1 or not _HUB_ID.match(data):
        return False
    return Path(data).suffix.lower() not in (*_TABLE_SUFFIXES, *_TEXT_SUFFIXES)


def _hub_examples(
    task: TaskSpec,
    dataset_id: str,
    split: Split,
    text_columns: Sequence[str] | None,
    label_column: str | None,
) -> Iterator[Example]:
    hub_id, hub_config = task.hub_dataset
    config = hub_config if dataset_id in (hub_id, hub_id.rsplit("/", 1)[-1]) else None
    if ":" in dataset_id:  # "wikimedia/wikipedia:20231101.en": a dataset with its configuration
        dataset_id, config = dataset_id.split(":", 1)
    hub_split = task.dev_split if split == "dev" else "train"
    try:
        import datasets

        dataset = datasets.load_dataset(dataset_id, config, split=hub_split)
    except Exception as err:  # offline, unknown id, no such split or config: all the same fix
        first = first_line(err)
        raise InputError(
            f"cannot load hub dataset {dataset_id} ({first}); pass local files with --data PATH"
        ) from err
    name = f"{dataset_id}[{hub_split}]"
    rows = ((f"{name}:{index + 1}", row) for index, row in enumerate(dataset))
    columns = list(dataset.column_names)
    if task.kind == "question-answering":
        return _squad_records(rows, task, text_columns or task.text_columns)
    text_cols = tuple(text_columns or task.text_columns)
    label = label_column or task.label_column
    _check_columns(columns, [*text_cols, *([label] if label else [])], name, task)
    examples = _record_examples(rows, task, text_cols, label)
    if task.kind == "masked-lm":  # wikitext keeps blank lines and section breaks as empty rows
        return (example for example in examples if example.texts[0].strip())
    return examples


def _check_options(
    task: TaskSpec,
    split: str,
    text_columns: Sequence[str] | None,
    label_column: str | None,
    limit: int | None,
) -> None:
    if split not in ("train", "dev"):
        raise InputError(f"unknown split {split!r}; use train or dev")
    if text_columns is not None:
        if isinstance(text_columns, str) or len(text_columns) != len(task.text_columns):
            given = text_columns if isinstance(text_columns, str) else ", ".join(text_columns)
            raise InputError(
                f"task {task.name} reads {len(task.text_columns)} text column(s) ({', '.join(task.text_columns)}); "
                f"--text-columns gave {given!r}"
            )
    if label_column is not None and task.label_column is None:
        raise InputError(f"task {task.name} has no label column; drop --label-column")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"--limit must be a positive whole number, got {_show(limit)}")


def load_examples(
    task: TaskSpec,
    data: str | Path,
    *,
    split: Split = "dev",
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> list[TextExample] | list[QAExample]:
    """The examples of ``task`` in ``data`` (a local file or folder, or a hub dataset id).

    ``split`` picks the file in a folder (``dev.tsv``, ``dev_matched.tsv``, ...) or the hub split
    (``task.dev_split`` or ``train``); a single file is read whatever the split.
    ``text_columns`` / ``label_column`` name the columns of CSV, JSON, JSONL (and named TSV) data; they
    default to the task's HF column names. With ``seed``, examples are shuffled with
    ``random.Random(seed)`` before ``limit`` takes the first ``limit`` of them; without a seed the first
    ``limit`` examples of the file are taken and the rest is not read.
    """
    _check_options(task, split, text_columns, label_column, limit)
    text_columns = tuple(text_columns) if text_columns is not None else None
    path = Path(data).expanduser()
    if path.exists():
        files = _folder_files(path, task, split) if path.is_dir() else [path]
        where = str(path)

        def chained() -> Iterator[Example]:
            for file in files:
                with closing(
                    _as_iterator(_file_examples(file, task, text_columns, label_column))
                ) as examples:
                    yield from examples

        stream: Iterator[Example] = chained()
    elif isinstance(data, str) and looks_like_hub_id(data):
        stream, where = _hub_examples(task, data, split, text_columns, label_column), data
    else:
        raise InputError(
            f"data file or folder {data} does not exist; check the path (or give a hub dataset id such as "
            f"{task.hub_dataset[0]})"
        )
    with closing(_as_iterator(stream)) as examples_iter:
        if seed is None and limit is not None:
            examples = list(islice(examples_iter, limit))
        else:
            examples = list(examples_iter)
    if seed is not None:
        random.Random(seed).shuffle(examples)
        examples = examples[:limit] if limit is not None else examples
    if not examples:
        raise InputError(f"{where} holds no {split} examples for task {task.name}; check the data")
    # One task reads one kind of example: say which, as the return type does.
    text = [e for e in examples if isinstance(e, TextExample)]
    if len(text) == len(examples):
        return text
    qa = [e for e in examples if isinstance(e, QAExample)]
    if len(qa) == len(examples):
        return qa
    raise ValueError(f"{where} mixes text and question-answering examples")


def _as_iterator(iterable: Iterable[Example]) -> Generator[Example, None, None]:
    """A generator (which has ``close``), so that an early stop closes the file it reads."""
    yield from iterable


def load_text_examples(task: TaskSpec, data: str | Path, **options: Any) -> list[TextExample]:
    """:func:`load_examples` for a text task (classification, regression, masked-LM text)."""
    examples = load_examples(task, data, **options)
    text = [e for e in examples if isinstance(e, TextExample)]
    if len(text) != len(examples):
        raise ValueError(f"task {task.name} reads question-answering examples, not text examples")
    return text


def load_qa_examples(task: TaskSpec, data: str | Path, **options: Any) -> list[QAExample]:
    """:func:`load_examples` for a question-answering task."""
    examples = load_examples(task, data, **options)
    qa = [e for e in examples if isinstance(e, QAExample)]
    if len(qa) != len(examples):
        raise ValueError(f"task {task.name} reads text examples, not question-answering examples")
    return qa


def required_label(example: TextExample) -> int | float:
    """The label of a training or evaluation example (``InputError`` naming the example without one)."""
    if example.label is None:
        raise InputError(f"{example.source} has no label; give labelled data")
    return example.label


def split_squad_by_article(
    examples: Sequence[QAExample], dev_fraction: float = 0.2, seed: int = 0
) -> tuple[list[QAExample], list[QAExample]]:
    """(train, dev) halves with no article (title) in both, each keeping the input order.

    Only SQuAD's dev set is available offline, so fine-tuning runs hold out whole articles: questions
    on one article share context, and splitting by question would leak it. ``dev_fraction`` of the
    articles (at least one) are chosen with ``random.Random(seed)``.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise InputError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    titles = list(dict.fromkeys(example.title for example in examples))
    if len(titles) < 2:
        raise InputError(
            f"cannot split {len(titles)} article(s) by article; give SQuAD data with at least two titles"
        )
    random.Random(seed).shuffle(titles)
    n_dev = min(len(titles) - 1, max(1, round(len(titles) * dev_fraction)))
    dev_titles = set(titles[:n_dev])
    train = [example for example in examples if example.title not in dev_titles]
    dev = [example for example in examples if example.title in dev_titles]
    return train, dev
