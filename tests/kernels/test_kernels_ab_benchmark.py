"""benchmarks/kernels_ab.py on the calibrated tiny BERT folder: variants compile with the rewrite's options,
the exact change (SmoothQuant folded into the op or run as a Multiply) prints a zero difference, the
kernels-off twin stays within INT8 rounding, and bad variants are one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import require_kernels  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ab():
    spec = importlib.util.spec_from_file_location("kernels_ab", BENCHMARKS / "kernels_ab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_variants_run_and_the_exact_change_differs_by_nothing(
    ab, calibrate_once, export_once, tmp_path, capsys
):
    require_kernels()
    folder = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    fp32 = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    out = tmp_path / "ab.json"
    argv = [
        f"fold={folder}:on",
        f"multiply={folder}:on:no-smooth-quant-fold",
        f"unfused={folder}:on:no-pairs:no-siblings:attention-quant:no-heads:no-scale-fold",
        f"dense={folder}:off",
        f"fp32={fp32}",
        "--batch", "2", "--seq", "8", "--rounds", "2", "--seconds", "0.02",
        "--check", "--profile", "fold", "--json", str(out),
    ]  # fmt: skip
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    assert "kernel ISA:" in printed and "CPU:" in printed
    assert "profile of fold, batch 2:" in printed and "SparseLinear" in printed
    results = {row["variant"]: row for row in json.loads(out.read_text())["results"]}
    assert set(results) == {"fold", "multiply", "unfused", "dense", "fp32"}
    assert results["fp32"]["max_abs_diff"] is None  # another model: no difference is printed
    assert results["fold"]["max_abs_diff"] == 0.0
    assert results["multiply"]["max_abs_diff"] == 0.0  # the folded factors give the Multiply's bits
    assert 0 < results["dense"]["max_abs_diff"] < 0.5  # OpenVINO's INT8 GEMMs round otherwise
    assert all(row["p50_ms"] >= row["min_ms"] > 0 for row in results.values())


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("nofolder", "is not NAME=FOLDER"),
        ("a=/no/such/folder", "openvino_model.xml does not exist"),
        ("a={folder}:fast", "unknown option 'fast'"),
        ("a={folder}:off:no-pairs", "mean nothing with 'off'"),
    ],
)
def test_bad_variants_are_one_line_errors(ab, export_once, capsys, variant, message):
    folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    assert ab.main([variant.format(folder=folder)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_json_inside_a_variant_folder_is_refused(ab, export_once, capsys):
    folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    assert ab.main([f"a={folder}", "--json", str(folder / "ab.json")]) == 2
    error = capsys.readouterr().err
    assert "--json" in error and "lies inside the input" in error and error.count("\n") == 1
    assert not (folder / "ab.json").exists()


def test_profile_must_name_a_variant(ab, export_once, capsys):
    folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    assert ab.main([f"a={folder}", "--profile", "b"]) == 2
    assert "names no variant" in capsys.readouterr().err
