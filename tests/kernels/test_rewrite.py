"""The load-time rewrite: a whole tiny BERT, the weight patterns exporters leave, auto mode and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import random_sparse, require_kernels  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


@pytest.fixture(scope="module")
def tiny_bert():
    """A random 2-layer BertForSequenceClassification, encoder Linear weights 90 % zero by magnitude,
    random biases, converted with ov.convert_model (a ready 4-D additive mask, see TOOLCHAIN.md)."""
    import openvino as ov
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=64, num_labels=3,
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    pruned = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                module.bias.normal_(0.0, 0.1)
                if ".encoder." in name:
                    w = module.weight
                    threshold = w.abs().flatten().kthvalue(int(0.9 * w.numel())).values
                    w[w.abs() <= threshold] = 0.0
                    pruned[name] = w.numpy().copy()

    class WithMask(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            ext = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            return self.inner(input_ids=input_ids, attention_mask=ext).logits

    ids = torch.randint(5, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    ov_model = ov.convert_model(WithMask(model), example_input={"input_ids": ids, "attention_mask": mask})
    return ov_model, pruned


def feeds(rng, batch=3, seq=19):
    ids = rng.integers(5, 1000, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq // 2 :] = 0  # padding in the batch
    if batch > 2:
        mask[1, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_tiny_bert_on_matches_dense(kernels, tiny_bert, tmp_path):
    import openvino as ov

    ov_model, pruned = tiny_bert
    core = ov.Core()
    dense = core.compile_model(ov_model, "CPU", F32)
    sparse, report = kernels.compile_sparse(core, ov_model, F32, mode="on")
    assert len(report.layers) == 14  # 12 encoder Linear + pooler + classifier
    assert all(layer.sparse and layer.bias_fused for layer in report.layers), report.to_json()
    encoder = [layer for layer in report.layers if ".encoder." in layer.name]
    assert all(layer.format == "csr" and abs(layer.sparsity - 0.9) < 0.01 for layer in encoder)
    fused = [layer for layer in encoder if layer.activation_fused == "gelu"]
    assert len(fused) == 2 and all("intermediate" in layer.name for layer in fused)
    assert "14/14" in report.summary() and "2 pairs fused" in report.summary()
    # Each FFN's up (GELU) and down layers run as one SparseLinearPair, and say so.
    paired = {layer.name: layer.fused_with for layer in encoder if layer.fused_kind == "pair"}
    assert len(paired) == 4 and all(paired[other] == name for name, other in paired.items())
    assert all(("intermediate" in name) != ("intermediate" in other) for name, other in paired.items())
    json.dumps(report.to_dict())
    unfused, report_unfused = kernels.compile_sparse(core, ov_model, F32, mode="on", fuse_gelu=False)
    assert not any(layer.activation_fused for layer in report_unfused.layers)
    # Q, K and V of each layer run as one SparseLinearSplit.
    split = [layer for layer in encoder if layer.fused_kind == "split"]
    assert len(split) == 6 and len({layer.fused_node for layer in split}) == 2
    assert all(len(layer.fused_with.split(", ")) == 2 for layer in split)
    assert "2 shared-input groups fused" in report.summary()
    unpaired, report_unpaired = kernels.compile_sparse(
        core, ov_model, F32, mode="on", fuse_pairs=False, fuse_siblings=False
    )
    assert not any(layer.fused_with for layer in report_unpaired.layers)
    rng = np.random.default_rng(0)
    # (1, 5) is one token tile: the pair runs its two layers one after the other; (3, 40) is several.
    for batch, seq in [(3, 19), (1, 5), (3, 40)]:
        feed = feeds(rng, batch, seq)
        want = dense(feed)[0]
        np.testing.assert_allclose(sparse(feed)[0], want, rtol=0, atol=1e-4)
        np.testing.assert_allclose(unfused(feed)[0], want, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(sparse(feed)[0], unpaired(feed)[0])  # the same arithmetic
    # The original model was not modified (compile_sparse rewrites a clone).
    assert not kernels.sparse_nodes(ov_model)

    # Saved IR with the op: reads back (with the extension), same outputs, and the accounting helper gives
    # back every encoder weight position for position (all pruned zeros still zero).
    model = ov_model.clone()
    kernels.rewrite(model, mode="on")
    xml = kernels.save_sparse_ir(model, tmp_path / "ir" / "openvino_model.xml")
    core2 = ov.Core()
    loaded = kernels.read_sparse_ir(core2, xml)
    feed = feeds(rng)
    np.testing.assert_allclose(
        core2.compile_model(loaded, "CPU", F32)(feed)[0], dense(feed)[0], rtol=0, atol=1e-4
    )
    nodes = kernels.sparse_nodes(loaded)
    kinds = sorted(node.get_type_name() for node in nodes)
    assert kinds.count("SparseLinearPair") == 2 and kinds.count("SparseLinearSplit") == 2
    by_name = {name: w for node in nodes for name, w in kernels.dense_weights(node).items()}
    assert len(by_name) == 14
    for torch_name, weight in pruned.items():
        (match,) = [w for name, w in by_name.items() if f"{torch_name}/" in name]
        np.testing.assert_array_equal(match, weight)


def test_modes_off_and_auto(kernels, tiny_bert):
    ov_model, _ = tiny_bert
    off = kernels.rewrite(ov_model.clone(), mode="off")
    assert not off.sparse_layers and all(layer.reason == "mode=off" for layer in off.layers)
    isa = kernels.isa()
    table = {"isas": {isa: {"shapes": [{"in_features": 64, "out_features": 64, "crossover": 0.5},
                                       {"in_features": 64, "out_features": 128, "crossover": 0.95},
                                       {"in_features": 128, "out_features": 64, "crossover": 0.5}]}}}  # fmt: skip
    model = ov_model.clone()
    auto = kernels.rewrite(model, mode="auto", table=table)
    reasons = {layer.name: layer for layer in auto.layers}
    intermediate = [layer for name, layer in reasons.items() if "intermediate" in name]
    assert intermediate and all(
        not layer.sparse and "below crossover" in layer.reason for layer in intermediate
    )
    query = [layer for name, layer in reasons.items() if "query" in name]
    assert all(layer.sparse and layer.crossover == 0.5 for layer in query)
    pooler = [layer for name, layer in reasons.items() if "pooler" in name]
    assert all(not layer.sparse and layer.sparsity == 0.0 for layer in pooler)
    layers = [name for node in kernels.sparse_nodes(model) for name in kernels.dense_weights(node)]
    assert len(layers) == len(auto.sparse_layers) == 10
    with pytest.raises(ValueError):
        kernels.rewrite(ov_model.clone(), mode="fast")
    no_table = kernels.rewrite(ov_model.clone(), mode="auto", table={})
    assert not no_table.sparse_layers and "no crossover" in no_table.layers[0].reason


def test_crossover_interpolation():
    from pruneofa.kernels.crossover import crossover

    table = {"isas": {"avx2": {"shapes": [{"in_features": 384, "out_features": 384, "crossover": 0.6},
                                          {"in_features": 768, "out_features": 768, "crossover": 0.4},
                                          {"in_features": 384, "out_features": 1536, "crossover": 0.5}]}}}  # fmt: skip
    assert crossover(384, 384, "avx2", table) == 0.6
    between = crossover(512, 512, "avx2", table)
    assert 0.4 < between < 0.6
    assert crossover(384, 384, "scalar", table) is None


def _linear_graph(weight_output, k, bias=None):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, -1, k], np.float32, name="x")
    y = ops.matmul(x, weight_output, False, True)
    if bias is not None:
        y = ops.add(y, ops.constant(bias.reshape(1, 1, -1)))
    return ov.Model([y.output(0)], [x])


def _check(kernels, model, w_eff, bias, expected_format):
    import openvino as ov

    core = ov.Core()
    x = np.random.default_rng(0).standard_normal((2, 3, w_eff.shape[1])).astype(np.float32)
    want = core.compile_model(model, "CPU", F32)([x])[0]
    compiled, report = kernels.compile_sparse(core, model, F32, mode="on")
    (layer,) = report.layers
    assert layer.sparse and layer.format == expected_format, layer
    assert layer.bias_fused == (bias is not None)
    exact = x @ w_eff.T + (0 if bias is None else bias)
    np.testing.assert_allclose(compiled([x])[0], exact, rtol=0, atol=1e-4)
    # OpenVINO's dense CPU path may quantize activations dynamically for INT8-compressed weights, so the
    # dense model is only close to the exact product; the sparse op computes in FP32.
    np.testing.assert_allclose(
        want, exact, rtol=0, atol=1e-4 if not expected_format.startswith("int8") else 0.1
    )


def test_weight_patterns(kernels):
    import openvino.opset13 as ops

    from pruneofa.kernels import formats

    rng = np.random.default_rng(5)
    w = random_sparse(rng, 24, 32, 0.85)
    bias = rng.standard_normal(24).astype(np.float32)
    # FP16-compressed constant (ov.save_model's default) -> Convert.
    w16 = w.astype(np.float16)
    _check(
        kernels,
        _linear_graph(ops.convert(ops.constant(w16), "f32"), 32, bias),
        w16.astype(np.float32),
        bias,
        "csr",
    )
    # NNCF INT8: Constant(i8) -> Convert -> Multiply(per-row scale).
    q, scales = formats.quantize_rows(w)
    deq = ops.multiply(ops.convert(ops.constant(q), "f32"), ops.constant(scales.reshape(-1, 1)))
    _check(kernels, _linear_graph(deq, 32, bias), q * scales[:, None], bias, "int8-csr")
    # Asymmetric (u8 with a zero point): dequantized to FP32 values.
    qu = (q.astype(np.int16) + 128).astype(np.uint8)
    deq_u8 = ops.multiply(
        ops.subtract(ops.convert(ops.constant(qu), "f32"), ops.constant(np.float32(128.0))),
        ops.constant(scales.reshape(-1, 1)),
    )
    _check(kernels, _linear_graph(deq_u8, 32), q * scales[:, None], None, "csr")
    # QAT: FakeQuantize on a constant weight (per-row ranges, 255 levels) folds to INT8 on its grid.
    high = np.abs(w).max(axis=1, keepdims=True).astype(np.float32)
    fq = ops.fake_quantize(
        ops.constant(w), ops.constant(-high), ops.constant(high), ops.constant(-high), ops.constant(high), 255
    )
    step = np.where(high > 0, 2 * high / 254, 1.0)[:, 0]
    w_fq = np.rint(w / step[:, None]) * step[:, None]
    _check(kernels, _linear_graph(fq, 32, bias), w_fq, bias, "int8-csr")
    # Block pattern (1 x 4 blocks along the input dimension, the recipes' default block_shape).
    wb = random_sparse(rng, 24, 32, 0.8, block=4)
    _check(kernels, _linear_graph(ops.constant(wb), 32, bias), wb, bias, "block")


def test_not_constant_and_report(kernels):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 8], np.float32, name="x")
    w = ops.parameter([4, 8], np.float32, name="w")
    model = ov.Model([ops.matmul(x, w, False, True).output(0)], [x, w])
    report = kernels.rewrite(model, mode="on")
    (layer,) = report.layers
    assert not layer.sparse and layer.reason.startswith("weight is not constant")
    assert "0/1" in report.summary()
