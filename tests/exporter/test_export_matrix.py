"""Every supported architecture × task exports to both targets with parity and exact sparsity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import ARCHS, TASK_CLASSES

from pruneofa.core.manifest import read_manifest
from pruneofa.core.support import EXPORT_TASKS


@pytest.mark.parametrize("task", list(TASK_CLASSES))
@pytest.mark.parametrize("arch", ARCHS)
def test_export_both_targets(export_once, arch, task):
    results = export_once(arch, task)
    assert set(results) == {"openvino", "onnx"}
    for target, result in results.items():
        manifest = read_manifest(result.output)  # validated on read
        assert manifest is not None and manifest.stage == "export"
        assert manifest.export.target == target and manifest.export.task == task
        assert manifest.parity.passed and manifest.parity.samples == 24
        for out in manifest.parity.outputs:
            assert out.max_abs_error < 1e-4
            assert out.argmax_agreement >= 0.99
        assert manifest.sparsity.passed and manifest.sparsity.position_exact
        assert manifest.sparsity.lost_zeros == 0 and manifest.sparsity.extra_zeros == 0
        linear = [
            t for t in manifest.sparsity.tensors if t.name.endswith(".weight") and t.status == "matched"
        ]
        assert manifest.sparsity.linear_numel > 0 and len(linear) >= 12  # 2 layers × 6 matrices
        assert (result.output / "config.json").is_file()
        assert any((result.output / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json"))
        assert manifest.export.outputs == list(EXPORT_TASKS[task].outputs)
    assert (results["openvino"].output / "openvino_model.xml").is_file()
    assert (results["openvino"].output / "openvino_model.bin").is_file()
    assert (results["onnx"].output / "model.onnx").is_file()


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_axes_are_dynamic_and_named(export_once, arch):
    model = onnx.load(str(export_once(arch, "text-classification")["onnx"].output / "model.onnx"))
    names = [i.name for i in model.graph.input]
    expected = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch == "bert" else [])
    assert names == expected
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]
    assert [o.name for o in model.graph.output] == ["logits"]


def test_openvino_runs_other_batch_and_sequence_sizes(export_once, tokenizers_dir):
    import openvino as ov

    result = export_once("bert", "token-classification")["openvino"]
    compiled = ov.Core().compile_model(str(result.output / "openvino_model.xml"), "CPU")
    for batch, seq in ((1, 1), (7, 3), (3, 120)):
        ids = np.ones((batch, seq), dtype=np.int64)
        out = compiled({"input_ids": ids, "attention_mask": ids, "token_type_ids": np.zeros_like(ids)})
        assert out["logits"].shape == (batch, seq, 3)


def test_manifest_records_source_and_versions(export_once, make_model):
    manifest = export_once("distilbert", "fill-mask")["onnx"].manifest
    folder = make_model("distilbert", "fill-mask")
    assert manifest.source.model == str(folder)
    assert "model.safetensors" in manifest.source.file_sha256
    assert {"torch", "transformers", "onnx", "openvino"} <= set(manifest.versions)
    raw = json.loads((export_once("distilbert", "fill-mask")["onnx"].output / "pruneofa.json").read_text())
    assert raw["tool"] == "pruneofa" and raw["schema_version"] == 1


def test_info_prints_the_stored_report(export_once, capsys, tmp_path):
    from pruneofa.cli import main

    folder = export_once("bert", "text-classification")["openvino"].output
    assert main(["info", str(folder), "--per-tensor"]) == 0
    out = capsys.readouterr().out
    assert "written by 'pruneofa export'" in out and "bert.encoder.layer.0.attention.self.query.weight" in out
    assert "Output parity" in out and "PASS" in out
    assert main(["info", str(tmp_path)]) == 2
    assert "has no pruneofa.json" in capsys.readouterr().err


def test_no_tokenizer_skips_the_openvino_tokenizer(export_once):
    result = export_once("distilbert", "text-classification", targets=["openvino"], convert_tokenizer=False)
    folder = result["openvino"].output
    assert not (folder / "openvino_tokenizer.xml").exists() and (folder / "openvino_model.xml").is_file()
    assert result["openvino"].manifest.export.tokenizer_note == "disabled with --no-tokenizer"
