"""``calibrate`` of a folder with a sparse IR writes an INT8 sparse IR (issue 25, issue 27.1): regenerated
from the calibrated INT8 IR with INT8 compute, checked like export checks it, recorded in the manifest,
validated with the kernels on and packaged for OVMS; never the FP32 sparse IR copied along."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pruneofa import kernels
from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest

pytestmark = pytest.mark.skipif(
    not kernels.available(), reason="the kernels extension could not be built here"
)

SPARSE_XML, SPARSE_BIN = "openvino_model_sparse.xml", "openvino_model_sparse.bin"
SPARSE_EXPORT = {"targets": ["openvino"], "sparse_ir": True, "sparse_kernels": "on"}


def _calibrate(folder, sst2_dir, output):
    from pruneofa.calibration import calibrate_model, make_config

    config = make_config(
        task="sst2",
        data=str(sst2_dir),
        split="train",
        samples=16,
        parity_samples=16,
        min_agreement=0.5,
        output=output,
    )
    return calibrate_model(folder, config, quiet=True).output


@pytest.fixture(scope="module")
def fp32_folder(export_once):
    return export_once("bert", "text-classification", "block1x4_90", **SPARSE_EXPORT)["openvino"].output


@pytest.fixture(scope="module")
def int8_folder(fp32_folder, sst2_dir, tmp_path_factory):
    return _calibrate(fp32_folder, sst2_dir, tmp_path_factory.mktemp("int8") / "out")


def _ir_weights(model) -> dict[str, np.ndarray]:
    from pruneofa.kernels.weights import read_weight

    weights = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul":
            try:
                weights[op.get_friendly_name()] = read_weight(op).dense
            except Exception:
                continue
    return weights


def test_calibrate_writes_an_int8_sparse_ir_with_the_int8_weights(fp32_folder, int8_folder):
    import openvino as ov

    info = read_manifest(int8_folder).export.sparse_ir
    assert info is not None and info.precision == "int8" and info.mode == "on"
    assert (
        info.weights_identical
        and info.tolerance is not None
        and info.p99_abs_error is not None
        and info.p99_abs_error <= info.tolerance
    )
    # mode on: every Linear layer, the 12 pruned encoder layers and the dense pooler and classifier
    assert info.sparse_layers == 14 and info.formats.get("int8-1x4") == 14, info
    assert info.activation_quant.get("static", 0) >= 8, info  # NNCF's FakeQuantize folded into the op
    # not the FP32 file copied along
    fp32_bytes = (fp32_folder / SPARSE_BIN).read_bytes()
    assert (int8_folder / SPARSE_BIN).read_bytes() != fp32_bytes
    files = read_manifest(int8_folder).export.files
    for name in (SPARSE_XML, SPARSE_BIN):
        assert files[name] == (int8_folder / name).stat().st_size
    # every sparse op's weights are the INT8 dense IR's, position for position; pruned ones exactly zero
    core = ov.Core()
    dense = _ir_weights(core.read_model(str(int8_folder / "openvino_model.xml")))
    sparse = kernels.read_sparse_ir(core, int8_folder / SPARSE_XML)
    nodes = kernels.sparse_nodes(sparse)
    assert {str(n.get_attributes().get("activation_quant")) for n in nodes} & {"static"}
    compared = pruned = 0
    for node in nodes:
        for name, back in kernels.dense_weights(node).items():
            np.testing.assert_array_equal(back, dense[name])
            compared += 1
            pruned += bool(np.mean(back == 0) > 0.85)
    assert compared == 14 and pruned == 12
    from pruneofa.deploy.packaging.ir_checks import check_ir

    assert check_ir(int8_folder / SPARSE_XML, int8_folder / SPARSE_BIN, read_manifest(int8_folder)).integer8


def _attention_fake_quantizes(model) -> int:
    """FakeQuantize nodes feeding a MatMul of two activations of rank 3+ (attention's Q·Kᵀ and P·V)."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        ranks = [op.get_input_partial_shape(i).rank.get_length() for i in range(2)]
        if min(ranks) >= 3:
            count += sum(op.input_value(i).get_node().get_type_name() == "FakeQuantize" for i in range(2))
    return count


def test_the_int8_sparse_ir_runs_the_attention_in_fp32_with_its_nan_guards_moved(int8_folder):
    """NNCF quantizes attention's MatMul inputs; beside the INT8 op they are dropped (kernels.attention) in
    the file and at load, the manifest counts them, and the NaN guards sit after P·V as at load."""
    import openvino as ov

    from pruneofa.deploy import load

    core = ov.Core()
    dense = core.read_model(str(int8_folder / "openvino_model.xml"))
    sparse = kernels.read_sparse_ir(core, int8_folder / SPARSE_XML)
    assert _attention_fake_quantizes(dense) >= 4  # the standard INT8 IR keeps NNCF's quantization
    assert _attention_fake_quantizes(sparse) == 0
    assert read_manifest(int8_folder).export.sparse_ir.attention_fp32 >= 4
    guards = [op for op in sparse.get_ordered_ops() if op.get_type_name() == "IsNaN"]
    assert guards and all(g.input_value(0).get_node().get_type_name() == "MatMul" for g in guards)
    pipe = load(int8_folder, sparse_kernels="on")
    assert pipe.sparse_report.attention_fp32 >= 4 and "attention in FP32" in pipe.describe()


def test_info_states_the_sparse_ir_precision(fp32_folder, int8_folder, capsys):
    assert main(["info", str(int8_folder)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "sparse IR:" in x)
    assert "INT8 weights" in line and "static activation quantization" in line, line
    # NNCF's SmoothQuant Multiply in front of the FakeQuantize nodes went into the op (input_scale)
    folded = read_manifest(int8_folder).export.sparse_ir.smooth_quant_folded
    assert folded >= 8 and f"SmoothQuant factors folded into {folded}" in line, line
    assert "identical to the INT8 dense IR's" in line, line
    assert main(["info", str(fp32_folder)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "sparse IR:" in x)
    assert "FP32 weights" in line and "identical to the FP32 dense IR's" in line, line


def test_info_names_a_stale_fp32_copy_in_an_int8_folder(int8_folder, tmp_path, capsys):
    """A folder calibrated before this fix: its manifest carries the FP32 export's sparse IR record."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(int8_folder, old)
    manifest = json.loads((old / "pruneofa.json").read_text())
    record = manifest["export"]["sparse_ir"]
    for key in ("precision", "mode", "activation_quant", "tolerance", "mean_abs_error", "p99_abs_error"):
        record.pop(key)
    (old / "pruneofa.json").write_text(json.dumps(manifest))
    assert main(["info", str(old)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "sparse IR:" in x)
    assert "FP32 weights although this folder is INT8" in line and "re-run pruneofa calibrate" in line, line


def test_validate_and_package_the_calibrated_sparse_folder(
    make_model, int8_folder, sst2_dir, tmp_path, capsys
):
    """validate with the kernels on against the PyTorch model, then package for OVMS: the INT8 sparse IR
    ships as the model."""
    from pruneofa.deploy import load

    pipe = load(int8_folder, sparse_kernels="on")
    ran = pipe.sparse_report.sparse_layers
    assert len([layer for layer in ran if layer.format == "int8-1x4"]) >= 12, pipe.describe()
    reference = make_model("bert", "text-classification", "block1x4_90")
    report = tmp_path / "validate.json"
    code = main(
        [
            "validate",
            str(int8_folder),
            "--reference",
            str(reference),
            "--data",
            str(sst2_dir),
            "--task",
            "sst2",
        ]
        + ["--sparse-kernels", "on", "--max-drop", "5", "--min-agreement", "0.9", "--report", str(report)]
        + ["--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    found = json.loads(report.read_text(encoding="utf-8"))
    assert found["examples"] > 0
    out_dir = tmp_path / "ovms"
    code = main(["package", str(int8_folder), "--format", "ovms", "--output", str(out_dir), "--quiet"])
    assert code == 0, capsys.readouterr().err
    shipped = list(out_dir.rglob("model.bin"))
    assert len(shipped) == 1 and shipped[0].read_bytes() == (int8_folder / SPARSE_BIN).read_bytes()


def test_without_kernels_the_int8_folder_has_no_sparse_ir(
    fp32_folder, sst2_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(kernels, "available", lambda: False)
    out = _calibrate(fp32_folder, sst2_dir, tmp_path / "int8")
    err = [line for line in capsys.readouterr().err.splitlines() if SPARSE_XML in line]
    assert len(err) == 1 and "kernels extension is not available" in err[0], err
    assert not (out / SPARSE_XML).exists() and not (out / SPARSE_BIN).exists()
    manifest = read_manifest(out)
    assert manifest.export.sparse_ir is None and SPARSE_XML not in manifest.export.files


def test_a_qat_export_writes_an_int8_sparse_ir(make_model, tokenizers_dir, tmp_path):
    """``pruneofa export QAT_FOLDER --sparse-ir``: the QAT IR is INT8, and so is its sparse IR (checked
    against it like calibrate's)."""
    import transformers

    from pruneofa.core.cpu import detect_cpu
    from pruneofa.core.qatfolder import save_qat_model
    from pruneofa.core.runtime import load_parity_samples
    from pruneofa.exporter import export_model, make_config
    from pruneofa.training.qat import quantize_for_training
    from pruneofa.training.recipe import load_recipe

    tokenizer = tokenizers_dir["bert"]
    sparse = transformers.AutoModelForSequenceClassification.from_pretrained(
        make_model("bert", "text-classification", "block1x4_90")
    ).eval()
    sentences = load_parity_samples()["sentences"]
    batches = [dict(tokenizer(sentences[i : i + 8], padding=True, return_tensors="pt")) for i in (0, 8)]
    quantized, _ = quantize_for_training(
        sparse, batches, load_recipe("qat-two-stage").qat, detect_cpu().int8_saturation_risk
    )
    qat_folder = tmp_path / "qat"
    qat_folder.mkdir()
    save_qat_model(quantized, qat_folder)
    tokenizer.save_pretrained(qat_folder)
    config = make_config(output=tmp_path / "out", convert_tokenizer=False, parity_samples=8, **SPARSE_EXPORT)
    (result,) = export_model(str(qat_folder), config, quiet=True)
    info = read_manifest(result.output).export.sparse_ir
    assert read_manifest(result.output).export.weight_format == "int8"
    assert info.precision == "int8" and info.weights_identical, info
    assert (
        info.p99_abs_error is not None and info.p99_abs_error <= info.tolerance and info.sparse_layers >= 12
    ), info
    from pruneofa.deploy.packaging.ir_checks import read_ir

    assert read_ir(result.output / SPARSE_XML, result.output / SPARSE_BIN).integer8 >= 12


def test_where_no_layer_qualifies_in_int8_no_sparse_ir_is_left(fp32_folder, calibrate_once, tmp_path, capsys):
    """The INT8 IR of a dense model, chosen in mode auto: no layer is sparse enough, so nothing is written
    and one line says why."""
    from pruneofa.calibration.sparse_ir import write_int8_sparse_ir

    manifest = read_manifest(fp32_folder)
    manifest.export.sparse_ir.mode = "auto"
    dense_int8 = calibrate_once("bert", "text-classification", None, "openvino").output
    staging = tmp_path / "staging"
    staging.mkdir()
    capsys.readouterr()
    info, problems = write_int8_sparse_ir(
        manifest, dense_int8 / "openvino_model.xml", staging, [], ("logits",)
    )
    assert info is None and problems == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and SPARSE_XML in err[0] and "sparse enough" in err[0], err
    assert list(staging.iterdir()) == []
