"""Resuming restores every weight: legacy LayerNorm names (gamma/beta) that BERT checkpoints are written
with are mapped (transformers' own strict=False load skipped them silently), tied weights may be absent,
and anything else missing is a one-line error instead of a run that continues from wrong values."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM

from pruneofa.core.errors import InputError
from pruneofa.training.checkpoints import load_resume_weights


def _model(seed: int) -> BertForMaskedLM:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    return BertForMaskedLM(config).eval()


def _legacy_state(model) -> dict[str, torch.Tensor]:
    state = {}
    for name, tensor in model.state_dict().items():
        if "decoder.weight" in name:  # tied to the word embeddings: safetensors stores it once
            continue
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        state[name] = tensor.clone().contiguous()
    return state


def test_legacy_layernorm_names_and_tied_weights_load_exactly(tmp_path):
    source, target = _model(0), _model(1)
    state = _legacy_state(source)
    assert any(k.endswith(".gamma") for k in state)
    save_file(state, str(tmp_path / "model.safetensors"))
    assert load_resume_weights(target, tmp_path)
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_missing_a_weight_is_refused(tmp_path):
    state = _legacy_state(_model(0))
    dropped = next(k for k in state if "attention.self.query.weight" in k)
    del state[dropped]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(InputError, match="lacks 1 weights .*query.weight.*delete"):
        load_resume_weights(_model(1), tmp_path)


def test_no_safetensors_leaves_it_to_transformers(tmp_path):
    assert load_resume_weights(_model(0), tmp_path) is False
