"""Property-based fuzzing of the folder readers: a tiny training model folder and a tiny exported folder get
one of their files (``pruneofa.json``, ``config.json``, ``tokenizer.json``, ``tokenizer_config.json``)
mutated (truncated, nested deep, raw bytes, a value of the wrong type, an absurd size, a key removed, a
huge sparse file), then every reader runs in-process: ``pruneofa info``, the manifest reader, the config
reader and its size check, the tokenizer pre-check and load, and export's reading of its input.

The only exception allowed is a one-line :class:`~pruneofa.core.errors.PruneofaError`; each example's Python
allocations (tracemalloc) stay under a bound, and so does the process's peak resident memory.
Bounded for CI (``PRUNEOFA_FUZZ_EXAMPLES`` per folder kind, default 40) and deterministic
(``derandomize``); a longer run: ``PRUNEOFA_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest -q
tests/core/test_model_folder_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneofa.cli import main
from pruneofa.core import modelio
from pruneofa.core.errors import PruneofaError
from pruneofa.core.manifest import read_manifest
from pruneofa.core.modelcheck import SIZE_BOUNDS, check_tokenizer_files
from pruneofa.exporter import make_config
from pruneofa.exporter.api import read_export_input

EXAMPLES = int(os.environ.get("PRUNEOFA_FUZZ_EXAMPLES", "40"))
FILES = ("pruneofa.json", "config.json", "tokenizer.json", "tokenizer_config.json")
PEAK_PER_EXAMPLE = 150e6  # Python allocations of one example's readers (tracemalloc)
RSS_GROWTH = 1.5e9  # the process's high-water mark over the whole run

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**9, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    [*SIZE_BOUNDS, "model_type", "architectures", "id2label", "label2id", "tool", "schema_version", "stage"]
    + ["source", "export", "sparsity", "model", "normalizer", "pre_tokenizer", "added_tokens", "version"]
    + ["tokenizer_class", "model_max_length", "auto_map", "do_lower_case"]
)


@st.composite
def mutations(draw) -> tuple[str, str, object]:
    """(file, kind, argument) of one mutation."""
    name = draw(st.sampled_from(FILES))
    kind = draw(st.sampled_from(["truncate", "nest", "bytes", "set", "set-nested", "delete", "size", "huge"]))
    if kind == "truncate":
        return name, kind, draw(st.floats(min_value=0, max_value=1))
    if kind == "nest":
        return name, kind, draw(st.sampled_from([2, 63, 64, 65, 1000, 100_000]))
    if kind == "bytes":
        return name, kind, draw(st.binary(max_size=64))
    if kind in ("set", "set-nested"):
        return name, kind, (draw(_keys), draw(_values))
    if kind == "delete":
        return name, kind, draw(_keys)
    if kind == "size":
        return name, kind, (draw(st.sampled_from(list(SIZE_BOUNDS))), draw(st.integers(-(10**15), 10**15)))
    return name, kind, None


def _mutate(path: Path, kind: str, argument: object) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "{}"
    if kind == "truncate":
        path.write_text(text[: int(len(text) * float(argument))], encoding="utf-8")
    elif kind == "nest":
        depth = int(argument)
        path.write_text('{"model": ' + "[" * depth + "1" + "]" * depth + "}", encoding="utf-8")
    elif kind == "bytes":
        path.write_bytes(bytes(argument))
    elif kind == "huge":
        path.write_text(text, encoding="utf-8")
        with path.open("r+b") as handle:
            handle.truncate(100 << 20)  # a sparse 100 MB file: no disk, no time
    else:
        content = json.loads(text)
        if not isinstance(content, dict):
            content = {}
        if kind == "delete":
            content.pop(argument, None)
        elif kind == "set-nested":
            key, value = argument
            inner = next((v for v in content.values() if isinstance(v, dict)), content)
            inner[key] = value
        else:
            key, value = argument
            content[key] = value
        path.write_text(json.dumps(content), encoding="utf-8")


def _restore(original: Path, folder: Path) -> None:
    for file in FILES:
        if (original / file).exists():
            shutil.copyfile(original / file, folder / file)
        else:
            (folder / file).unlink(missing_ok=True)


def _one_line(err: PruneofaError) -> None:
    message = str(err)
    assert message and "\n" not in message and len(message) < 2000, message


def _readers(folder: Path, *, exported: bool, capsys) -> None:
    capsys.readouterr()  # what came before (a fixture's progress bars) is not this command's
    code = main(["info", str(folder)])
    captured = capsys.readouterr()
    assert code in (0, 2), captured.err
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1, captured.err
    calls = [
        lambda: read_manifest(folder),
        lambda: modelio.load_config(modelio.folder_source(folder)),
        lambda: check_tokenizer_files(folder),
        lambda: modelio.load_tokenizer(modelio.folder_source(folder)),
        lambda: read_export_input(
            modelio.folder_source(folder) if exported else modelio.resolve_model_source(str(folder)),
            make_config(targets=["onnx"]),
        ),
    ]
    for call in calls:
        try:
            call()
        except PruneofaError as err:
            _one_line(err)


def _fuzz(original: Path, work: Path, *, exported: bool, capsys) -> None:
    folder = work / "folder"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(original, folder)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(mutation=mutations())
    def run(mutation) -> None:
        name, kind, argument = mutation
        _restore(original, folder)  # each example starts from the original files
        _mutate(folder / name, kind, argument)
        tracemalloc.start()
        try:
            _readers(folder, exported=exported, capsys=capsys)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < PEAK_PER_EXAMPLE, (mutation, peak)

    run()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
    assert growth < RSS_GROWTH, growth


def test_training_model_folder(make_model, tmp_path, capsys):
    _fuzz(make_model("bert", "text-classification"), tmp_path, exported=False, capsys=capsys)


def test_exported_folder(export_once, tmp_path, capsys):
    exported = export_once("bert", "text-classification", None, targets=["openvino"], parity_samples=4)
    _fuzz(exported["openvino"].output, tmp_path, exported=True, capsys=capsys)


@pytest.mark.parametrize("name", FILES)
def test_every_file_deeply_nested_and_huge(make_model, tmp_path, capsys, name):
    """The issue's cases, each file in turn, whatever the generated examples above hit."""
    original = make_model("bert", "text-classification")
    folder = tmp_path / "folder"
    shutil.copytree(original, folder)
    for kind, argument in (("nest", 100_000), ("huge", None), ("truncate", 0.5)):
        _restore(original, folder)
        (folder / "pruneofa.json").write_text('{"tool": "pruneofa"}')
        _mutate(folder / name, kind, argument)
        _readers(folder, exported=False, capsys=capsys)
