"""Pruning masks as re-parametrizations: the mask multiplies the weight on every forward.

Built on ``torch.nn.utils.parametrize`` (what ``torch.ao.pruning`` uses too): ``module.weight`` becomes
``original * mask``. The gradient that reaches ``original`` is masked, so a pruned weight has no effect
and no gradient, and as masks are recomputed from the *effective* weight (``original * mask``), a
pruned weight is never chosen again: nothing regrows. ``remove_pruning`` bakes the masks in, leaving
plain ``nn.Linear`` weights with exact zeros.

Which masks: the *method* (magnitude, per pattern) lives here; *when* and *how much* is the schedule's
job (:mod:`training.schedule`), as in Intel's Model-Compression-Research-Package.
Patterns: ``unstructured``; ``block`` (``block_shape`` rows × columns, scored by their L1 norm);
``structured`` (whole attention heads and whole feed-forward neurons, so that export's ``--shrink``
turns the sparsity into smaller matrices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from torch.nn.utils import parametrize

from pruneofa.core.modelio import hf_base_model, hf_config
from pruneofa.core.support import ARCHITECTURES, ArchitectureSpec

Pattern = Literal["unstructured", "block", "structured"]


class PruningConfig(BaseModel):
    """What to prune and how masks are shaped (the schedule decides when and how much)."""

    model_config = ConfigDict(extra="forbid")

    pattern: Pattern = "unstructured"
    block_shape: tuple[int, int] = (1, 4)
    scope: Literal["uniform", "global"] = "uniform"
    # Regexes over module names; default: every encoder Linear weight and the pooler, never embeddings,
    # LayerNorm, biases or task/MLM heads (the paper's choice).
    include: list[str] = Field(default_factory=lambda: [r"(^|\.)(encoder|transformer)\.", r"(^|\.)pooler\."])
    exclude: list[str] = Field(default_factory=list)

    @field_validator("block_shape")
    @classmethod
    def _positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 1:
            raise ValueError(f"block_shape {value} must be positive")
        return value


class Mask(nn.Module):
    """The parametrization: ``weight = original * mask`` (mask is a persistent buffer, saved with the model)."""

    mask: torch.Tensor

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original * self.mask


@dataclass
class PrunedLinear:
    name: str
    module: nn.Linear

    @property
    def mask(self) -> torch.Tensor:
        return mask_of(self.module)

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight  # the effective (masked) weight


def _selected(name: str, config: PruningConfig) -> bool:
    return any(re.search(p, name) for p in config.include) and not any(
        re.search(p, name) for p in config.exclude
    )


def apply_pruning(model: nn.Module, config: PruningConfig) -> list[PrunedLinear]:
    """Attach an all-ones mask to every selected ``nn.Linear`` weight; returns them in model order."""
    pruned = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and _selected(name, config):
            if not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(module, "weight", Mask(module.weight.shape))
            pruned.append(PrunedLinear(name, module))
    if not pruned:
        raise ValueError(f"no nn.Linear module matches include={config.include} exclude={config.exclude}")
    return pruned


def pruned_modules(model: nn.Module) -> list[PrunedLinear]:
    return [
        PrunedLinear(name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and parametrize.is_parametrized(module, "weight")
    ]


def pattern_digests(model: nn.Module) -> dict[str, str]:
    """Per module, the SHA-256 of its sparsity pattern: the masks of a pruning run, else the zero positions
    of every ``nn.Linear`` weight (a locked pattern in finetune/qat). Equal digests, equal patterns."""
    import hashlib

    pruned = pruned_modules(model)
    if pruned:
        patterns = {p.name: p.mask != 0 for p in pruned}
    else:
        patterns = {n: m.weight == 0 for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return {
        name: hashlib.sha256(pattern.cpu().numpy().tobytes()).hexdigest()
        for name, pattern in patterns.items()
    }


def _keep_top(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """1 for the largest ``(1 - sparsity)`` share of ``scores``, 0 for the rest (exact count)."""
    flat = scores.flatten()
    n_prune = int(round(sparsity * flat.numel()))
    keep = torch.ones_like(flat)
    if n_prune > 0:
        keep[torch.argsort(flat, stable=True)[:n_prune]] = 0.0
    return keep.view_as(scores)


def _block_scores(weight: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    rows, cols = block
    if weight.shape[0] % rows or weight.shape[1] % cols:
        raise ValueError(f"weight of shape {tuple(weight.shape)} is not divisible into {rows}x{cols} blocks")
    return weight.abs().reshape(weight.shape[0] // rows, rows, weight.shape[1] // cols, cols).sum(dim=(1, 3))


def _expand_blocks(block_mask: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    return block_mask.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)


@torch.no_grad()
def update_masks(model: nn.Module, sparsity: float, config: PruningConfig) -> None:
    """Recompute masks by magnitude so that the pruned share equals ``sparsity`` (per layer, or over all
    layers together with ``scope='global'``). Already-pruned weights score 0, so they stay pruned."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    modules = pruned_modules(model)
    if config.pattern == "structured":
        _update_structured(model, sparsity)
        return
    if config.pattern == "block":
        scores = [_block_scores(m.weight, config.block_shape) for m in modules]
    else:
        scores = [m.weight.abs() for m in modules]
    if config.scope == "global":
        keep_all = _keep_top(torch.cat([s.flatten() for s in scores]), sparsity)
        keeps, offset = [], 0
        for s in scores:
            keeps.append(keep_all[offset : offset + s.numel()].view_as(s))
            offset += s.numel()
    else:
        keeps = [_keep_top(s, sparsity) for s in scores]
    for module, keep in zip(modules, keeps, strict=True):
        mask = _expand_blocks(keep, config.block_shape) if config.pattern == "block" else keep
        module.mask.copy_(mask)


def mask_of(module: nn.Module) -> torch.Tensor:
    """The mask buffer of a Linear layer whose weight carries the ``Mask`` parametrization."""
    mask = module.get_submodule("parametrizations.weight.0")
    if not isinstance(mask, Mask):
        raise TypeError(f"the weight of this {type(module).__name__} carries no pruning mask")
    return mask.mask


def _linear(layer: nn.Module, path: str) -> nn.Linear:
    found = layer.get_submodule(path)
    if not isinstance(found, nn.Linear):
        raise TypeError(f"{path} is a {type(found).__name__}, not a Linear layer")
    return found


def _update_structured(model: nn.Module, sparsity: float) -> None:
    config = hf_config(model)
    spec: ArchitectureSpec = ARCHITECTURES[config.model_type]
    heads = getattr(config, spec.num_heads_attr)
    layout = spec.layout()
    layers = hf_base_model(model).get_submodule(layout.layers)
    for layer in layers:
        q, k, v = (_linear(layer, p) for p in (layout.query, layout.key, layout.value))
        out, ffn_in, ffn_out = (
            _linear(layer, p) for p in (layout.attention_output, layout.ffn_in, layout.ffn_out)
        )
        for module in (q, k, v, out, ffn_in, ffn_out):
            if not parametrize.is_parametrized(module, "weight"):
                raise ValueError("structured pruning needs the attention and FFN Linear layers selected")
        head_dim = q.weight.shape[0] // heads
        head_score = sum(m.weight.abs().reshape(heads, head_dim, -1).sum(dim=(1, 2)) for m in (q, k, v))
        head_score = head_score + out.weight.abs().reshape(-1, heads, head_dim).sum(dim=(0, 2))
        keep_heads = _keep_top(head_score, sparsity).repeat_interleave(head_dim)
        for module in (q, k, v):
            mask_of(module).copy_(keep_heads[:, None].expand_as(module.weight))
        mask_of(out).copy_(keep_heads[None, :].expand_as(out.weight))
        neuron_score = ffn_in.weight.abs().sum(dim=1) * ffn_out.weight.abs().sum(dim=0)
        keep_neurons = _keep_top(neuron_score, sparsity)
        mask_of(ffn_in).copy_(keep_neurons[:, None].expand_as(ffn_in.weight))
        mask_of(ffn_out).copy_(keep_neurons[None, :].expand_as(ffn_out.weight))


@torch.no_grad()
def lock_sparsity(model: nn.Module, config: PruningConfig | None = None) -> list[PrunedLinear]:
    """Sparse transfer: mask = (weight != 0) for every selected Linear weight, so zeros stay zeros."""
    pruned = apply_pruning(model, config or PruningConfig())
    for module in pruned:
        module.mask.copy_((module.weight != 0).to(module.mask.dtype))
    return pruned


@torch.no_grad()
def remove_pruning(model: nn.Module) -> None:
    """Bake the masks in: plain weights with exact zeros where the mask was 0."""
    for module in pruned_modules(model):
        parametrize.remove_parametrizations(module.module, "weight", leave_parametrized=True)


def sparsity_by_module(model: nn.Module, config: PruningConfig | None = None) -> dict[str, float]:
    """Share of zeros of every pruned (or, without masks, every selected) Linear weight."""
    modules = pruned_modules(model)
    if modules:
        return {m.name: float((m.weight == 0).float().mean()) for m in modules}
    return {
        name: float((module.weight == 0).float().mean())
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and _selected(name, config or PruningConfig())
    }


def zero_patterns(model: torch.nn.Module, config: PruningConfig | None = None) -> dict[str, torch.Tensor]:
    """Where the selected ``nn.Linear`` weights are zero now (the pattern QAT must keep)."""
    config = config or PruningConfig()
    return {
        name: module.weight.detach() == 0
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and _selected(name, config)
    }


def regrown(model: torch.nn.Module, patterns: dict[str, torch.Tensor]) -> dict[str, int]:
    """How many weights that were zero are not zero any more, per module (empty: pattern intact)."""
    modules = dict(model.named_modules())
    counts = {}
    for name, zeros in patterns.items():
        # on the GPU after training there; the pattern may be on the CPU
        weight = modules[name].weight
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{name}.weight is not a tensor")
        weight = weight.detach()
        counts[name] = int((zeros.to(weight.device) & (weight != 0)).sum())
    return {name: count for name, count in counts.items() if count}
