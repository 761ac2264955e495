"""benchmarks/mlm_quality.py, the study's language-model check of the pruned students, on tiny models."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mlm_quality.py"


def _module():
    spec = importlib.util.spec_from_file_location("mlm_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| model") and len(cells) == 6:
            rows[cells[0]] = cells[1:]
    return rows


def test_scores_the_teacher_against_itself_as_zero_kl_and_a_pruned_copy_as_sparse_and_further(
    make_model, corpus, capsys
):
    teacher = make_model("bert", "fill-mask")
    pruned = make_model("bert", "fill-mask", "unstructured90")
    argv = [str(teacher), str(pruned), "--teacher", str(teacher), "--corpus", str(corpus)]
    assert _module().main([*argv, "--blocks", "8", "--seq-len", "32", "--batch-size", "4"]) == 0
    rows = _rows(capsys.readouterr().out)
    itself, sparse = rows[Path(teacher).name], rows[Path(pruned).name]
    assert itself[0] == "0.0%" and itself[3] == "0.000" and itself[4] == "100.0%"
    assert itself[1] == rows[f"teacher ({Path(teacher).name})"][1]  # same masks, same loss
    assert sparse[0] == "90.0%" and float(sparse[3]) > 0 and float(sparse[4].rstrip("%")) < 100


def test_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _module().main([str(tmp_path / "nope"), "--teacher", str(tmp_path)])
    assert exc.value.code == 2
    assert "not a model folder" in capsys.readouterr().err
