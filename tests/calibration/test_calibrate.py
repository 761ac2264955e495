"""INT8 calibration on tiny models, both targets: zeros survive exactly, choices are recorded, bad input
is refused with nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from calibration_models import margin_export_fixture  # noqa: F401  (the margin_export fixture)
from onnx import numpy_helper

from pruneofa.calibration.backends import backend_for
from pruneofa.calibration.sparsity import account_int8_sparsity
from pruneofa.cli import main
from pruneofa.core.cpu import detect_cpu
from pruneofa.core.manifest import read_manifest


def _check_int8(result, target: str, samples: int = 16) -> None:
    manifest = read_manifest(result.output)  # validated on read
    assert manifest.stage == "calibrate" and manifest.export.weight_format == "int8"
    assert [entry.stage for entry in manifest.lineage] == ["export"]
    report = manifest.sparsity
    assert report.weight_format == "int8" and report.passed and report.lost_zeros == 0
    encoder = [t for t in report.tensors if t.status == "matched" and t.linear and ".layer." in t.name]
    assert len(encoder) == 12 and all(t.precision == "int8" for t in encoder)
    for t in report.tensors:
        if t.status == "matched":
            assert t.zeros_after == t.zeros_before + t.extra_zeros
    info = manifest.calibration
    assert info.target == target and info.samples == samples and info.seed == (0 if samples else None)
    weights = "model.onnx" if target == "onnx" else "openvino_model.bin"  # tiny models: the XML dominates
    fp32_files = read_manifest(Path(manifest.source.model)).export.files
    assert manifest.export.files[weights] < 0.5 * fp32_files[weights]
    assert info.cpu and info.saturation_fix
    assert manifest.parity.passed and manifest.parity.atol is None


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_unstructured_90_keeps_every_zero_in_int8(calibrate_once, target):
    result = calibrate_once("bert", "text-classification", "unstructured90", target)
    _check_int8(result, target)
    encoder = [t for t in result.manifest.sparsity.tensors if t.linear and ".layer." in t.name]
    assert sum(t.zeros_before for t in encoder) / sum(t.numel for t in encoder) == pytest.approx(
        0.9, abs=0.001
    )


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile", "dynamic"])
def test_onnx_methods(calibrate_once, method):
    result = calibrate_once(
        "distilbert",
        "text-classification",
        "unstructured90",
        "onnx",
        method=method,
        per_channel=method != "minmax",
    )
    _check_int8(result, "onnx", samples=0 if method == "dynamic" else 16)
    info = result.manifest.calibration
    assert info.method == ("ort-dynamic" if method == "dynamic" else "ort-static-qdq")
    assert info.calibration == (None if method == "dynamic" else method)
    assert info.per_channel == (method != "minmax")


# RoBERTa + OpenVINO INT8 is left out on purpose: with these tiny random weights and the short packaged
# contexts, OpenVINO 2026.4 fails to compile NNCF's output ("convert->constant_fold" check), which
# calibrate reports as a one-line error (exit 1); see docs/calibrate-validate.md.
@pytest.mark.parametrize("arch,target", [("bert", "openvino"), ("roberta", "onnx"), ("bert", "onnx")])
def test_question_answering(calibrate_once, arch, target):
    result = calibrate_once(arch, "question-answering", None, target)
    _check_int8(result, target, samples=12)  # the packaged SQuAD fixture has 12 questions, one feature each
    assert result.manifest.calibration.task == "squad"


def test_saturation_fix_follows_the_cpu_and_is_recorded(calibrate_once):
    from nncf.quantization.advanced_parameters import OverflowFix

    openvino, onnx = backend_for("openvino"), backend_for("onnx")
    assert openvino.saturation_fix("auto", True)[0] == OverflowFix.ENABLE
    assert openvino.saturation_fix("auto", False)[0] == OverflowFix.DISABLE
    assert onnx.saturation_fix("auto", True)[0] is True
    assert onnx.saturation_fix("auto", False)[0] is False
    assert onnx.saturation_fix("disable", True)[0] is False
    cpu = detect_cpu()
    recorded = calibrate_once(
        "bert", "text-classification", "unstructured90", "openvino"
    ).manifest.calibration
    expected = "enable" if cpu.int8_saturation_risk else "disable"
    assert f"overflow_fix={expected}" in recorded.saturation_fix and cpu.model in recorded.cpu
    forced = calibrate_once(
        "bert", "text-classification", "unstructured90", "openvino", overflow_fix="disable"
    )
    assert "overflow_fix=disable (requested)" in forced.manifest.calibration.saturation_fix


def test_cpu_flags_are_read(tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni amx_int8\n")
    cpu = detect_cpu(fake)
    assert cpu.model == "Test CPU" and cpu.has_vnni and cpu.has_amx and not cpu.int8_saturation_risk
    fake.write_text("model name\t: Old CPU\nflags\t\t: fpu avx2\n")
    assert detect_cpu(fake).int8_saturation_risk
    assert detect_cpu(tmp_path / "missing").int8_saturation_risk  # unknown: the safe side


def test_accuracy_control_records_metrics_and_kept_layers(margin_export, sst2_dir, tmp_path):
    """On a model whose margins dwarf INT8 error (calibration_models.py), with every gate at its default:
    accuracy control runs (NNCF evaluated the model), the drop is measured and within --max-drop."""
    from pruneofa.calibration import calibrate_model, make_config

    config = make_config(
        task="sst2",
        data=str(sst2_dir),
        samples=16,
        max_drop=1.0,
        eval_data=str(sst2_dir),
        eval_limit=16,
        output=tmp_path / "int8",
    )
    result = calibrate_model(margin_export, config, quiet=True)
    manifest = read_manifest(result.output)
    control = manifest.calibration.accuracy_control
    assert control is not None and control.metric == "accuracy" and control.max_drop == 1.0
    assert control.fp32_metric == 100.0  # the model was trained on these labels
    assert control.ptq_metric is not None  # NNCF's accuracy control evaluated the INT8 model
    assert control.passed and control.fp32_metric - control.int8_metric <= 1.0
    assert control.kept_in_float == []  # nothing had to stay in float
    assert manifest.parity.passed and manifest.parity.min_agreement == 0.95  # the default gate
    assert manifest.parity.checks[0].measure == "label_agreement" and manifest.parity.checks[0].value == 1.0


def test_a_lost_zero_is_detected(calibrate_once, tmp_path):
    """The check can fail: make one pruned weight non-zero in the INT8 file and account again."""
    result = calibrate_once("bert", "text-classification", "unstructured90", "onnx")
    fp32_manifest = read_manifest(Path(result.manifest.source.model))
    model = onnx.load(str(result.output / "model.onnx"))
    target_name = next(
        t.exported_name for t in result.manifest.sparsity.tensors if t.linear and ".layer.0." in t.name
    )
    init = next(i for i in model.graph.initializer if i.name == target_name)
    values = numpy_helper.to_array(init).copy()
    zero_at = np.argwhere(values == 0)[0]
    values[tuple(zero_at)] = 5
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    report, problems, _ = account_int8_sparsity(
        fp32_manifest.sparsity, "onnx", Path(result.manifest.source.model) / "model.onnx", broken
    )
    assert report.lost_zeros == 1 and not report.passed and "non-zero in INT8" in problems[0]


def test_a_lost_zero_is_detected_in_an_openvino_int8_ir(calibrate_once, tmp_path):
    """As for ONNX: write a non-zero integer over one pruned INT8 weight in the IR's .bin and account again."""
    import xml.etree.ElementTree as ET

    result = calibrate_once("bert", "text-classification", "unstructured90", "openvino")
    fp32_folder = Path(result.manifest.source.model)
    # a pruned matrix whose INT8 zeros are exactly its FP32 zeros (no rounding zeros): any zero was pruned
    row = next(
        t
        for t in result.manifest.sparsity.tensors
        if t.linear and ".layer.0." in t.name and t.precision == "int8" and t.extra_zeros == 0
    )
    layer = next(
        node
        for node in ET.parse(result.output / "openvino_model.xml").getroot().iter("layer")
        if node.get("type") == "Const" and node.get("name") == row.exported_name
    )
    data = layer.find("data")
    assert data.get("element_type") == "i8"
    offset, size = int(data.get("offset")), int(data.get("size"))
    blob = bytearray((result.output / "openvino_model.bin").read_bytes())
    values = np.frombuffer(bytes(blob[offset : offset + size]), dtype=np.int8)
    assert int((values == 0).sum()) == row.zeros_before
    blob[offset + int(np.flatnonzero(values == 0)[0])] = 5
    shutil.copy2(result.output / "openvino_model.xml", tmp_path / "openvino_model.xml")
    (tmp_path / "openvino_model.bin").write_bytes(bytes(blob))
    report, problems, _ = account_int8_sparsity(
        read_manifest(fp32_folder).sparsity,
        "openvino",
        fp32_folder / "openvino_model.xml",
        tmp_path / "openvino_model.xml",
    )
    broken = next(t for t in report.tensors if t.name == row.name)
    assert broken.lost_zeros == 1 and report.lost_zeros == 1
    assert not report.passed and "non-zero in INT8" in problems[0]


def _calibrate(capsys, folder, out, *extra: str) -> tuple[int, str]:
    code = main(["calibrate", str(folder), "--output", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_bad_input_is_refused_and_nothing_written(
    export_once, calibrate_once, sst2_dir, squad_file, make_model, tmp_path, capsys
):
    ov = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    onnx_dir = export_once("bert", "text-classification", "unstructured90")["onnx"].output
    int8 = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    out = tmp_path / "out"
    sst2 = ["--task", "sst2", "--data", str(sst2_dir)]
    cases = [
        (tmp_path / "missing", sst2, "is not a folder"),
        (make_model("bert", "text-classification"), sst2, "has no export manifest"),
        (int8, sst2, "is already INT8"),
        (ov, ["--task", "squad", "--data", str(squad_file)], "needs a question-answering model"),
        (ov, sst2 + ["--method", "entropy"], "applies to ONNX targets"),
        (ov, sst2 + ["--max-drop", "1"], "--max-drop needs --eval-data"),
        (onnx_dir, sst2 + ["--max-drop", "1", "--eval-data", str(sst2_dir)], "needs an OpenVINO target"),
        (ov, ["--task", "sst5", "--data", str(sst2_dir)], "unknown task 'sst5'"),
        (ov, ["--task", "sst2", "--data", str(tmp_path / "nope.tsv")], "nope.tsv"),
        (ov, sst2 + ["--samples", "0"], "--samples"),
    ]
    for folder, extra, message in cases:
        code, err = _calibrate(capsys, folder, out, *extra)
        assert code == 2 and message in err, (extra, err)
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_failed_parity_writes_nothing(export_once, sst2_dir, tmp_path, capsys):
    exported = export_once("bert", "text-classification", "unstructured90")["onnx"].output
    out = tmp_path / "out"
    code = main(
        ["calibrate", str(exported), "--output", str(out), "--task", "sst2", "--data", str(sst2_dir)]
        + ["--samples", "8", "--atol", "1e-9"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "rejected, nothing written" in err
    # the tables that explain the rejection, and no line claiming a folder was written
    assert "checks that rejected it (nothing was written)" in err and "Output parity" in err
    assert "written by" not in err and "Exported" not in err
    assert not out.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
