"""The attention NaN guard moved from the probabilities to the attention output
(``core.attention_guard``): found in real exports, the same outputs, and the same zeros for a fully
masked row, which is what the guard is for."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from pruneofa.core.attention_guard import move_nan_guards
from pruneofa.core.runtime import OPENVINO_XML, load_parity_samples
from pruneofa.deploy.pipeline import load

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _guarded_attention(mask_value: float) -> ov.Model:
    """softmax(q·kᵀ + mask) guarded as the exports do, times v: one head, [1, 1, 4, 4] scores."""
    q = ops.parameter([1, 1, 4, 8], np.float32, name="q")
    k = ops.parameter([1, 1, 4, 8], np.float32, name="k")
    v = ops.parameter([1, 1, 4, 8], np.float32, name="v")
    mask = ops.parameter([1, 1, 1, 4], np.float32, name="mask")
    scores = ops.add(ops.matmul(q, k, False, True), ops.multiply(mask, ops.constant(np.float32(mask_value))))
    probs = ops.softmax(scores, -1)
    guarded = ops.select(ops.is_nan(probs), ops.constant(np.float32(0.0)), probs)
    return ov.Model([ops.matmul(guarded, v, False, False)], [q, k, v, mask])


def _run(model: ov.Model, feed: dict) -> np.ndarray:
    return ov.Core().compile_model(model, "CPU", F32)(feed)[0]


@pytest.mark.parametrize("fully_masked", [False, True])
def test_moving_the_guard_keeps_the_results(fully_masked):
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal((1, 1, 4, 8)).astype(np.float32) for name in ("q", "k", "v")}
    # mask 1 = masked; -inf makes a fully masked row NaN after the softmax, which the guard turns into 0
    feed["mask"] = np.array([[[[1, 1, 1, 1] if fully_masked else [0, 0, 1, 0]]]], np.float32)
    before = _run(_guarded_attention(-np.inf), feed)
    model = _guarded_attention(-np.inf)
    assert move_nan_guards(model) == 1
    types = [op.get_type_name() for op in model.get_ordered_ops()]
    assert types.index("Softmax") + 1 == types.index("MatMul", types.index("Softmax"))  # nothing between
    after = _run(model, feed)
    if fully_masked:
        assert np.all(before == 0.0) and np.all(after == 0.0)
    else:
        assert np.isfinite(before).all()
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert move_nan_guards(model) == 0  # nothing left to move


def test_other_selects_are_left_alone():
    x = ops.parameter([2, 3], np.float32, name="x")
    other = ops.select(ops.is_nan(x), ops.constant(np.float32(1.0)), x)  # not a softmax, not zero
    model = ov.Model([ops.matmul(other, ops.constant(np.ones((3, 2), np.float32)), False, False)], [x])
    assert move_nan_guards(model) == 0


def test_real_exports_have_the_guard_and_give_the_same_outputs(export_once):
    folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    core = ov.Core()
    original = core.read_model(str(folder / OPENVINO_XML))
    moved = core.read_model(str(folder / OPENVINO_XML))
    count = move_nan_guards(moved)
    layers = sum(op.get_type_name() == "Softmax" for op in original.get_ordered_ops())
    assert count == layers > 0, "the export's attention no longer has the guard this pass moves"
    pipe = load(folder, sparse_kernels="off")  # the load-time hook moves them in every mode
    texts = load_parity_samples()["sentences"][:6]
    feed = pipe.encoder.encode(texts)
    inputs = {port.get_any_name(): feed[port.get_any_name()] for port in original.inputs}
    expected = core.compile_model(original, "CPU", F32)(inputs)[0]
    np.testing.assert_allclose(core.compile_model(moved, "CPU", F32)(inputs)[0], expected, atol=1e-5)
    np.testing.assert_allclose(pipe.engine(feed)[0], expected, atol=1e-5)
