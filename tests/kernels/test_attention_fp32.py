"""kernels.attention: the FakeQuantize nodes that feed only attention's activation x activation MatMuls are
removed (the attention then runs in FP32 and OpenVINO can fuse it), and no other FakeQuantize is touched."""

from __future__ import annotations

import numpy as np
import pytest

from pruneofa.kernels.attention import dequantize_attention

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset13")


def _fq(value, low=-2.0, high=2.0):
    c = [ops.constant(np.float32(v)) for v in (low, high, low, high)]
    return ops.fake_quantize(value, *c, 256)


def _model(quantized: bool):
    """q [1,2,4,8] x k [1,2,8,4] (attention), an activation x [4,8] through a Linear, and one FakeQuantize
    shared by an attention MatMul and an Add."""
    q = ops.parameter([1, 2, 4, 8], np.float32, name="q")
    k = ops.parameter([1, 2, 8, 4], np.float32, name="k")
    v = ops.parameter([1, 2, 4, 8], np.float32, name="v")
    x = ops.parameter([4, 8], np.float32, name="x")
    wrap = _fq if quantized else (lambda value: value)
    scores = ops.matmul(wrap(q), wrap(k), False, False)
    shared = wrap(v)
    context = ops.matmul(ops.softmax(scores, -1), shared, False, False)
    weight = ops.constant(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    linear = ops.matmul(_fq(x), weight, False, False)  # a Linear's FakeQuantize: always kept
    kept = ops.add(shared, ops.constant(np.float32(1.0)))
    return ov.Model([context, linear, kept], [q, k, v, x])


def _fake_quantizes(model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())


def test_only_the_attention_fake_quantizes_are_removed_and_the_rest_runs_unchanged():
    model = _model(quantized=True)
    assert _fake_quantizes(model) == 4
    assert dequantize_attention(model) == 2  # q and k; v also feeds an Add, the Linear's is a Linear's
    assert _fake_quantizes(model) == 2
    model.validate_nodes_and_infer_types()
    scores = next(op for op in model.get_ordered_ops() if op.get_type_name() == "Softmax").input_value(0)
    assert [scores.get_node().input_value(i).get_node().get_type_name() for i in range(2)] == [
        "Parameter"
    ] * 2
    rng = np.random.default_rng(1)
    feed = {
        "q": rng.uniform(-3, 3, (1, 2, 4, 8)).astype(np.float32),
        "k": rng.uniform(-3, 3, (1, 2, 8, 4)).astype(np.float32),
        "v": rng.uniform(-3, 3, (1, 2, 4, 8)).astype(np.float32),
        "x": rng.uniform(-3, 3, (4, 8)).astype(np.float32),
    }
    core = ov.Core()
    got = core.compile_model(model, "CPU")(feed)
    # the reference: the attention's q and k unquantized, everything else as before
    q, k = (ops.parameter(s, np.float32, name=n) for n, s in (("q", [1, 2, 4, 8]), ("k", [1, 2, 8, 4])))
    v, x = ops.parameter([1, 2, 4, 8], np.float32, name="v"), ops.parameter([4, 8], np.float32, name="x")
    shared = _fq(v)
    context = ops.matmul(ops.softmax(ops.matmul(q, k, False, False), -1), shared, False, False)
    weight = ops.constant(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    linear = ops.matmul(_fq(x), weight, False, False)
    kept = ops.add(shared, ops.constant(np.float32(1.0)))
    want = core.compile_model(ov.Model([context, linear, kept], [q, k, v, x]), "CPU")(feed)
    for index in range(3):
        np.testing.assert_allclose(got[index], want[index], rtol=1e-6, atol=1e-6)
    # clipping to [-2, 2] made the quantized attention differ: the test sees the removal
    original = core.compile_model(_model(quantized=True), "CPU")(feed)
    assert np.abs(original[0] - got[0]).max() > 1e-3


def test_a_model_without_fake_quantize_is_left_alone():
    model = _model(quantized=False)
    before = len(model.get_ordered_ops())
    assert dequantize_attention(model) == 0  # only the Linear's FakeQuantize, which stays
    assert len(model.get_ordered_ops()) == before


def _heads(value):
    """[1, 4, 16] -> [1, 2, 4, 8]: the Reshape and Transpose that split V into heads."""
    split = ops.reshape(value, ops.constant(np.array([1, 4, 2, 8], np.int64)), False)
    return ops.transpose(split, ops.constant(np.array([0, 2, 1, 3], np.int64)))


def _value_model(also_elsewhere: bool):
    """softmax(q) x heads(FakeQuantize(v)): V's FakeQuantize reaches the MatMul through layout ops only, or
    (``also_elsewhere``) its Reshape also feeds an Add."""
    p = ops.parameter([1, 2, 4, 4], np.float32, name="p")
    v = ops.parameter([1, 4, 16], np.float32, name="v")
    heads = _heads(_fq(v))
    outputs = [ops.matmul(ops.softmax(p, -1), heads, False, False)]
    if also_elsewhere:
        outputs.append(ops.add(heads.input_value(0), ops.constant(np.float32(1.0))))
    return ov.Model(outputs, [p, v])


def test_the_value_fake_quantize_behind_the_head_split_is_removed():
    model = _value_model(also_elsewhere=False)
    assert dequantize_attention(model) == 1
    assert _fake_quantizes(model) == 0
    model.validate_nodes_and_infer_types()
    rng = np.random.default_rng(2)
    feed = {"p": rng.uniform(-3, 3, (1, 2, 4, 4)).astype(np.float32), "v": rng.uniform(-3, 3, (1, 4, 16))}
    feed["v"] = feed["v"].astype(np.float32)
    core = ov.Core()
    got = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feed)[0]  # no bf16 here
    want = np.einsum(
        "bhij,bhjd->bhid", _softmax(feed["p"]), feed["v"].reshape(1, 4, 2, 8).transpose(0, 2, 1, 3)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_value_fake_quantize_whose_layout_ops_feed_more_than_attention_stays():
    model = _value_model(also_elsewhere=True)
    assert dequantize_attention(model) == 0
    assert _fake_quantizes(model) == 1


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
