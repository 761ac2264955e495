"""Structured shrink: physically remove dead attention heads and dead feed-forward neurons.

CPUs without sparse kernels gain nothing from scattered zeros, but they run smaller matrices faster.
A head is dead when its query, key and value rows are all zero, or when its columns of the attention
output projection are all zero. A feed-forward neuron is dead when its input row or its output column
is all zero. Removing them is exact, with one subtlety handled here: a head with zero Q/K/V weights
but non-zero biases still emits its value bias (attention over identical values returns that value),
and a neuron with a zero input row still emits ``act(bias)``; both are constants, so their
contribution is folded into the bias of the following projection before the structure is removed.

transformers 5 removed ``prune_heads`` and cannot express a different FFN width per layer, so this
works on the in-memory modules: the exported graph is smaller, ``config.json`` stays as it was (it
still describes labels and the tokenizer; the graph carries the shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruneofa.core.manifest import ShrinkLayer, ShrinkReport
from pruneofa.core.modelio import hf_base_model, hf_config
from pruneofa.core.support import ArchitectureSpec


@dataclass
class LayerPlan:
    keep_heads: list[int]
    folded_heads: list[int]  # dead through zero Q/K/V weights: their value bias is folded
    keep_neurons: list[int]
    folded_neurons: list[int]  # dead through a zero input row: act(bias) is folded
    num_heads: int
    num_neurons: int


def submodule(module: nn.Module, path: str) -> nn.Module:
    found: object = module
    for part in path.split("."):
        found = getattr(found, part)
    if not isinstance(found, nn.Module):
        raise TypeError(f"{path} is a {type(found).__name__}, not a module")
    return found


def _linear(module: nn.Module, path: str) -> nn.Linear:
    found = submodule(module, path)
    if not isinstance(found, nn.Linear):
        raise TypeError(f"{path} is a {type(found).__name__}, not the Linear layer structured shrink expects")
    return found


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = submodule(module, parent_path) if parent_path else module
    setattr(parent, name, value)


def encoder_layers(model: nn.Module, spec: ArchitectureSpec) -> nn.ModuleList:
    layers = submodule(hf_base_model(model), spec.layout().layers)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{spec.layout().layers} is a {type(layers).__name__}, not a ModuleList of layers")
    return layers


def _ffn_activation(layer: nn.Module, spec: ArchitectureSpec):
    # BERT/RoBERTa keep the activation on the intermediate block, DistilBERT on the FFN block.
    owner = submodule(layer, spec.layout().ffn_in.rpartition(".")[0])
    for name in ("intermediate_act_fn", "activation"):
        if hasattr(owner, name):
            return getattr(owner, name)
    raise TypeError(f"cannot find the feed-forward activation of {type(owner).__name__}")


def plan_layer(layer: nn.Module, spec: ArchitectureSpec, num_heads: int) -> LayerPlan:
    q, k, v = (
        _linear(layer, p).weight for p in (spec.layout().query, spec.layout().key, spec.layout().value)
    )
    out = _linear(layer, spec.layout().attention_output).weight
    head_dim = q.shape[0] // num_heads
    folded_heads, zero_out_heads = [], []
    for h in range(num_heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        if not (q[rows].any() or k[rows].any() or v[rows].any()):
            folded_heads.append(h)
        elif not out[:, rows].any():
            zero_out_heads.append(h)
    dead_heads = set(folded_heads) | set(zero_out_heads)
    keep_heads = [h for h in range(num_heads) if h not in dead_heads] or [0]
    folded_heads = [h for h in folded_heads if h not in keep_heads]

    w_in = _linear(layer, spec.layout().ffn_in).weight
    w_out = _linear(layer, spec.layout().ffn_out).weight
    zero_in = ~w_in.any(dim=1)
    zero_out = ~w_out.any(dim=0)
    dead = zero_in | zero_out
    keep_neurons = [int(i) for i in torch.nonzero(~dead).flatten()] or [0]
    folded_neurons = [
        int(i) for i in torch.nonzero(zero_in & ~zero_out).flatten() if int(i) not in keep_neurons
    ]
    return LayerPlan(keep_heads, folded_heads, keep_neurons, folded_neurons, num_heads, w_in.shape[0])


def _sliced_linear(
    linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    weight = linear.weight.detach()
    bias = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        weight = weight[rows]
        bias = bias[rows] if bias is not None else None
    if cols is not None:
        weight = weight[:, cols]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new


@torch.no_grad()
def _apply_layer_plan(layer: nn.Module, spec: ArchitectureSpec, plan: LayerPlan) -> None:
    q_lin = _linear(layer, spec.layout().query)
    head_dim = q_lin.weight.shape[0] // plan.num_heads
    out_lin = _linear(layer, spec.layout().attention_output)
    if plan.folded_heads:
        v_bias = _linear(layer, spec.layout().value).bias
        if v_bias is not None and out_lin.bias is not None:
            cols = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in plan.folded_heads])
            out_lin.bias.add_(out_lin.weight[:, cols] @ v_bias[cols])
    if len(plan.keep_heads) < plan.num_heads:
        keep = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in plan.keep_heads])
        for path in (spec.layout().query, spec.layout().key, spec.layout().value):
            _set(layer, path, _sliced_linear(_linear(layer, path), rows=keep))
        _set(layer, spec.layout().attention_output, _sliced_linear(out_lin, cols=keep))
        attention = submodule(layer, spec.layout().query.rpartition(".")[0])
        kept = len(plan.keep_heads)
        for name, value in (
            ("num_attention_heads", kept),
            ("n_heads", kept),
            ("all_head_size", kept * head_dim),
        ):
            if hasattr(attention, name):
                setattr(attention, name, value)

    ffn_in, ffn_out = _linear(layer, spec.layout().ffn_in), _linear(layer, spec.layout().ffn_out)
    if plan.folded_neurons and ffn_in.bias is not None and ffn_out.bias is not None:
        idx = torch.tensor(plan.folded_neurons)
        constant = _ffn_activation(layer, spec)(ffn_in.bias[idx])
        ffn_out.bias.add_(ffn_out.weight[:, idx] @ constant)
    if len(plan.keep_neurons) < plan.num_neurons:
        keep = torch.tensor(plan.keep_neurons)
        _set(layer, spec.layout().ffn_in, _sliced_linear(ffn_in, rows=keep))
        _set(layer, spec.layout().ffn_out, _sliced_linear(_linear(layer, spec.layout().ffn_out), cols=keep))


def shrink_model(model: nn.Module, spec: ArchitectureSpec) -> ShrinkReport:
    """Remove dead heads and neurons from ``model`` in place; return what was removed per layer."""
    params_before = sum(p.numel() for p in model.parameters())
    num_heads = getattr(hf_config(model), spec.num_heads_attr)
    rows = []
    for index, layer in enumerate(encoder_layers(model, spec)):
        plan = plan_layer(layer, spec, num_heads)
        _apply_layer_plan(layer, spec, plan)
        rows.append(
            ShrinkLayer(
                layer=index,
                heads_before=plan.num_heads,
                heads_after=len(plan.keep_heads),
                neurons_before=plan.num_neurons,
                neurons_after=len(plan.keep_neurons),
            )
        )
    params_after = sum(p.numel() for p in model.parameters())
    return ShrinkReport(layers=rows, params_before=params_before, params_after=params_after)
