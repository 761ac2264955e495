"""Pruned zeros survive export exactly; --shrink removes dead heads and neurons and keeps outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import transformers
from conftest import ARCHS, sparsify, tiny_config

from pruneofa.core.support import ARCHITECTURES
from pruneofa.exporter.shrink import encoder_layers, shrink_model, submodule
from pruneofa.exporter.sparsity import openvino_constants


def _tiny(arch: str):
    torch.manual_seed(0)
    cls = {
        "bert": "BertForSequenceClassification",
        "distilbert": "DistilBertForSequenceClassification",
        "roberta": "RobertaForSequenceClassification",
    }[arch]
    return getattr(transformers, cls)(tiny_config(arch, 300)).eval()


def _inputs(batch: int = 3, seq: int = 11):
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(5, 300, (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, seq // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_unstructured_90_percent_zeros_are_kept_position_for_position(export_once, target):
    manifest = export_once("bert", "text-classification", "unstructured90")[target].manifest
    report = manifest.sparsity
    assert report.passed and report.position_exact
    encoder = [t for t in report.tensors if ".layer." in t.name]
    assert len(encoder) == 12
    assert sum(t.zeros_before for t in encoder) / sum(t.numel for t in encoder) == pytest.approx(
        0.9, abs=0.001
    )
    assert report.linear_zeros_after == report.linear_zeros_before
    for row in report.tensors:
        if row.status == "matched":
            assert row.zeros_after == row.zeros_before and row.lost_zeros == 0 and row.extra_zeros == 0


def test_fp16_weights_keep_every_zero_and_count_rounding_zeros(export_once):
    result = export_once(
        "bert", "text-classification", "unstructured90", targets=["openvino"], weight_format="fp16"
    )
    report = result["openvino"].manifest.sparsity
    assert report.weight_format == "fp16"
    assert report.lost_zeros == 0 and report.passed
    assert report.linear_zeros_after == report.linear_zeros_before + sum(
        t.extra_zeros for t in report.tensors if t.status == "matched" and "layer" in t.name
    )
    assert result["openvino"].manifest.parity.passed
    bin_fp16 = (result["openvino"].output / "openvino_model.bin").stat().st_size
    bin_fp32 = (
        (
            export_once("bert", "text-classification", "unstructured90")["openvino"].output
            / "openvino_model.bin"
        )
        .stat()
        .st_size
    )
    assert bin_fp16 < 0.6 * bin_fp32


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pattern", ["heads", "neurons"])
def test_shrink_removes_dead_structures_and_keeps_outputs(arch, pattern):
    model = _tiny(arch)
    sparsify(model, pattern)
    shrunk = copy.deepcopy(model)
    report = shrink_model(shrunk, ARCHITECTURES[arch])
    inputs = _inputs()
    with torch.no_grad():
        np.testing.assert_allclose(shrunk(**inputs).logits.numpy(), model(**inputs).logits.numpy(), atol=1e-5)
    assert report.params_after < report.params_before
    if pattern == "heads":
        assert [(r.heads_before, r.heads_after) for r in report.layers] == [(4, 2), (4, 2)]
        assert [r.neurons_after for r in report.layers] == [64, 64]
    else:
        assert [(r.neurons_before, r.neurons_after) for r in report.layers] == [(64, 24), (64, 24)]
        assert [r.heads_after for r in report.layers] == [4, 4]


def test_shrink_keeps_one_head_when_all_are_dead():
    model = _tiny("bert")
    spec = ARCHITECTURES["bert"]
    with torch.no_grad():
        for path in (spec.query, spec.key, spec.value):
            submodule(encoder_layers(model, spec)[0], path).weight.zero_()
    shrunk = copy.deepcopy(model)
    report = shrink_model(shrunk, spec)
    assert report.layers[0].heads_after == 1
    with torch.no_grad():
        np.testing.assert_allclose(
            shrunk(**_inputs()).logits.numpy(), model(**_inputs()).logits.numpy(), atol=1e-5
        )


@pytest.mark.parametrize("pattern", ["heads", "neurons"])
def test_shrink_export_has_smaller_matrices_and_matches_unshrunk_model(export_once, pattern):
    results = export_once("bert", "text-classification", pattern, shrink=True)
    plain = export_once("bert", "text-classification", pattern)
    for target in ("openvino", "onnx"):
        manifest = results[target].manifest
        assert manifest.parity.passed and manifest.parity.reference.endswith("(unshrunk)")
        assert manifest.sparsity.passed
        assert manifest.shrink is not None and manifest.shrink.params_after < manifest.shrink.params_before
        assert manifest.sparsity.linear_numel < plain[target].manifest.sparsity.linear_numel
    shapes = sorted(
        arr.shape for _, arr in openvino_constants(results["openvino"].output / "openvino_model.xml")
    )
    plain_shapes = sorted(
        arr.shape for _, arr in openvino_constants(plain["openvino"].output / "openvino_model.xml")
    )
    if pattern == "heads":  # query/key/value of 2 kept heads: 16 rows instead of 32
        assert any(16 in s and 32 in s for s in shapes) and not any(16 in s and 32 in s for s in plain_shapes)
    else:  # 24 of 64 neurons kept
        assert any(24 in s and 32 in s for s in shapes) and not any(24 in s for s in plain_shapes)
    xml = results["openvino"].output / "openvino_model.bin"
    assert xml.stat().st_size < (plain["openvino"].output / "openvino_model.bin").stat().st_size


def test_shrink_that_removes_nothing_says_so(make_model, tmp_path, capsys):
    from pruneofa.cli import main

    out = tmp_path / "dense-shrunk"
    model = make_model("bert", "text-classification")
    capsys.readouterr()
    code = main(["export", str(model), "--target", "openvino", "--output", str(out), "--shrink", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "warning: --shrink removed nothing" in err
