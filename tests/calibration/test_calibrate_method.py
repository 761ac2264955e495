"""``--method``: ONNX's default ``auto`` keeps static QDQ where it passes parity and switches to dynamic
quantization (saying so) where it does not or where no data is given; dynamic quantization reads no
calibration data and says so; OpenVINO (NNCF) refuses ONNX methods and needs data."""

from __future__ import annotations

from calibration_models import (  # noqa: F401  (fixtures)
    margin_export_fixture,
    margin_onnx_export_fixture,
    outlier_onnx_export_fixture,
)

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest

PARITY = ["--parity-samples", "16"]  # sizes the margin model was trained on (calibration_models.py)


def _run(capsys, folder, out, *extra: str) -> tuple[int, str, str]:
    """Exit code, stderr (progress and errors) and stdout (the report)."""
    code = main(["calibrate", str(folder), "--output", str(out), *PARITY, *extra])
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def test_auto_switches_to_dynamic_where_static_fails_parity(outlier_onnx_export, sst2_dir, tmp_path, capsys):
    """The outlier model (calibration_models.py) loses labels under static QDQ, whose attention-score
    MatMuls are quantized; dynamic quantization keeps them in float and passes."""
    data = ["--task", "sst2", "--data", str(sst2_dir), "--samples", "16"]
    strict = tmp_path / "minmax"
    code, err, _ = _run(capsys, outlier_onnx_export, strict, *data, "--method", "minmax")
    assert code == 1 and not strict.exists()
    assert "label agreement" in err and "try --method dynamic" in err and "switching" not in err

    out = tmp_path / "auto"
    code, err, _ = _run(capsys, outlier_onnx_export, out, *data)
    assert code == 0, err
    switched = [line for line in err.splitlines() if "switching to dynamic" in line]
    assert len(switched) == 1 and switched[0].startswith(
        "ort-static-qdq (minmax) failed parity (label agreement"
    )
    info = read_manifest(out).calibration
    assert info.method == "ort-dynamic" and info.calibration is None
    assert info.samples == 0 and info.data is None and info.task == "sst2"  # the kept model read no data
    assert len(info.tried) == 1 and info.tried[0].startswith("ort-static-qdq (minmax): parity failed")
    assert read_manifest(out).parity.passed


def test_auto_keeps_static_where_it_passes(margin_onnx_export, sst2_dir, tmp_path, capsys):
    out = tmp_path / "auto"
    code, err, _ = _run(
        capsys, margin_onnx_export, out, "--task", "sst2", "--data", str(sst2_dir), "--samples", "16"
    )
    assert code == 0, err
    assert "static QDQ, minmax) on 16 samples of sst2" in err and "then dynamic quantization if" in err
    assert "switching" not in err
    info = read_manifest(out).calibration
    assert info.method == "ort-static-qdq" and info.calibration == "minmax" and info.tried == []
    assert info.samples == 16 and info.data == str(sst2_dir) and info.seed == 0 and info.split == "train"


def test_without_data_onnx_is_quantized_dynamically(margin_onnx_export, tmp_path, capsys):
    out = tmp_path / "no-data"
    code, err, printed = _run(capsys, margin_onnx_export, out)
    assert code == 0, err
    assert "no --data: dynamic quantization: no calibration data" in err and "samples" not in err
    info = read_manifest(out).calibration
    assert info.method == "ort-dynamic" and info.samples == 0
    assert info.data is None and info.task is None and info.seed is None and info.split is None
    assert "INT8 calibration: ort-dynamic" in printed and "data: none (dynamic quantization" in printed


def test_dynamic_reads_no_data_and_says_so(margin_onnx_export, sst2_dir, tmp_path, capsys):
    out = tmp_path / "dynamic"
    code, err, _ = _run(
        capsys, margin_onnx_export, out, "--task", "sst2", "--data", str(sst2_dir), "--method", "dynamic"
    )
    assert code == 0, err
    assert "dynamic quantization: no calibration data" in err and "--data is not read" in err
    assert "calibrating" not in err and "300 samples" not in err
    info = read_manifest(out).calibration
    assert info.method == "ort-dynamic" and info.samples == 0 and info.data is None and info.task == "sst2"


def test_options_that_would_do_nothing_are_refused(
    margin_export, margin_onnx_export, sst2_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    sst2 = ["--task", "sst2", "--data", str(sst2_dir)]
    cases = [
        (
            margin_onnx_export,
            ["--method", "dynamic", "--samples", "8"],
            "--samples given, but --method dynamic draws no",
        ),
        (
            margin_onnx_export,
            ["--method", "dynamic", "--seed", "1", "--split", "dev"],
            "--split, --seed given, but --method dynamic",
        ),
        (margin_onnx_export, ["--method", "minmax"], "--method minmax calibrates on samples: give --task"),
        (margin_onnx_export, ["--data", str(sst2_dir)], "--data needs --task"),
        (margin_onnx_export, ["--samples", "8"], "--samples given without --data"),
        (margin_export, [], "OpenVINO INT8 (NNCF) calibrates activations on samples"),
        (margin_export, sst2 + ["--method", "minmax"], "--method minmax applies to ONNX targets"),
        (margin_export, sst2 + ["--method", "dynamic"], "--method dynamic applies to ONNX targets"),
        (margin_export, sst2 + ["--no-per-channel"], "--no-per-channel applies to ONNX targets"),
        (margin_onnx_export, ["--preset", "mixed"], "--preset is NNCF's, for OpenVINO targets"),
    ]
    for folder, extra, message in cases:
        code, err, _ = _run(capsys, folder, out, *extra)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (extra, err)
        assert not out.exists()
