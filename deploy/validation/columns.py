"""``--slice-by``: the value of named data columns for each validated example, so that the behaviour
report can score the models on groups of examples (a genre, a source, a SQuAD article).

``load_examples`` keeps only the columns a task reads, so the columns are read again from the data
file(s) the examples came from, with the same readers, which give the same line numbers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pruneofa.core.data import QAExample
from pruneofa.core.errors import InputError
from pruneofa.core.tasks import TaskSpec

# GLUE CoLA files have no header; these are the names the GLUE documentation gives their four columns.
_COLA_COLUMNS = ("source", "label", "original_mark", "sentence")


def _cell(value: Any) -> str:
    """A data cell as a slice name: text stripped, other JSON values as JSON, gaps named."""
    if value is None:
        return "(missing)"
    text = value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text or "(empty)"


def _unknown_column(column: str, where: Any, available: Sequence[str]) -> InputError:
    have = ", ".join(repr(name) for name in available) or "none"
    return InputError(
        f"--slice-by {column!r}: no such column in {where} (its columns are {have}); name one of them"
    )


def _table_columns(path: Path, task: TaskSpec, columns: Sequence[str]) -> dict[int, list[str]]:
    """``{line: [value of each column]}`` of one local data file, keyed as ``load_examples`` keys its
    examples' ``source`` (``file:line``). The readers of :mod:`pruneofa.core.data` are reused on
    purpose: the same parsing gives the same line numbers (a JSON array's records, quoted CSV fields)."""
    from pruneofa.core.data import json_records, table_rows

    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        with contextlib.closing(table_rows(path, "\t" if suffix == ".tsv" else ",")) as rows:
            if task.name == "cola" and suffix == ".tsv":
                header: list[str] = list(_COLA_COLUMNS)
            else:
                header = next(rows, (0, []))[1]
            for column in columns:
                if column not in header:
                    raise _unknown_column(column, path, header)
            at = [header.index(column) for column in columns]
            return {
                line: [_cell(fields[i]) if i < len(fields) else "(missing)" for i in at]
                for line, fields in rows
            }
    records = json_records(path)
    available = list(
        dict.fromkeys(key for _, record in records if isinstance(record, Mapping) for key in record)
    )
    for column in columns:
        if column not in available:
            raise _unknown_column(column, path, available)
    return {
        int(where.rpartition(":")[2]): [_cell(record.get(column)) for column in columns]
        for where, record in records
        if isinstance(record, Mapping)
    }


def _qa_columns(data: str, examples: Sequence[QAExample], columns: Sequence[str]) -> dict[str, list[str]]:
    """SQuAD slices: ``title`` always; any record key when ``--data`` is a file of flat records."""
    from pruneofa.core.data import json_document

    path, by_id = Path(data).expanduser(), {}
    if path.is_file():
        _, records = json_document(path)
        by_id = {str(r.get("id")): r for _, r in records or () if isinstance(r, Mapping)}
    available = list(dict.fromkeys(["title", *(key for record in by_id.values() for key in record)]))
    for column in columns:
        if column not in available:
            raise _unknown_column(column, data, available)
    return {
        column: [
            _cell(e.title) if column == "title" else _cell(by_id.get(e.id, {}).get(column)) for e in examples
        ]
        for column in columns
    }


def column_values(
    task: TaskSpec, data: str, examples: Sequence[Any], columns: Sequence[str]
) -> dict[str, list[str]]:
    """The value of each ``--slice-by`` column for each example, read from the data file(s) the examples
    came from (``load_examples`` keeps only the task's columns). Bad input is a one-line error."""
    if not columns:
        return {}
    if task.kind == "question-answering":
        return _qa_columns(data, examples, columns)
    tables: dict[str, dict[int, list[str]]] = {}
    values: dict[str, list[str]] = {column: [] for column in columns}
    for example in examples:
        file, _, line = example.source.rpartition(":")
        if file not in tables:
            if not Path(file).is_file():
                raise InputError(
                    f"--slice-by reads the columns of local data files, and {data} is a hub dataset; save it "
                    "to a file (e.g. datasets' Dataset.to_csv('dev.csv')) and pass --data dev.csv"
                )
            tables[file] = _table_columns(Path(file), task, columns)
        row = tables[file].get(int(line), ["(missing)"] * len(columns))
        for column, value in zip(columns, row, strict=True):
            values[column].append(value)
    return values
