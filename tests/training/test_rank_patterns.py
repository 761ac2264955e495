"""Under torchrun the ranks' sparsity patterns are compared at the end of training: equal patterns give
one line with their digest, a rank that diverged stops the run naming the first layer that differs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pruneofa.training import engine
from pruneofa.training.masks import pattern_digests


def _model(zero: int) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight[0, zero] = 0.0
    return model


def _trainer(model: nn.Module) -> SimpleNamespace:
    return SimpleNamespace(model=model, is_world_process_zero=lambda: True)


def _other_rank_has(monkeypatch, other: dict[str, str]) -> None:
    import torch.distributed as dist

    monkeypatch.setattr(dist, "get_world_size", lambda: 2)

    def gather(out, mine):
        out[0], out[1] = mine, other

    monkeypatch.setattr(dist, "all_gather_object", gather)


def test_equal_patterns_print_one_digest(monkeypatch, capsys):
    _other_rank_has(monkeypatch, pattern_digests(_model(zero=1)))
    digest = engine.check_same_pattern_on_every_rank(_trainer(_model(zero=1)), "prune")
    assert f"the same sparsity pattern on all 2 ranks (sha256 {digest[:16]})" in capsys.readouterr().out


def test_a_diverged_rank_stops_the_run_naming_the_layer(monkeypatch):
    _other_rank_has(monkeypatch, pattern_digests(_model(zero=2)))
    with pytest.raises(RuntimeError, match=r"different sparsity patterns in 1 layers \(first 1\)"):
        engine.check_same_pattern_on_every_rank(_trainer(_model(zero=1)), "prune")
