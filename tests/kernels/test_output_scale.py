"""Scalar Multiplies behind a sparse node folded into its weights (kernels.output_scale): attention's Q and K
scaling in an exported BERT, FP32 and INT8; the patterns that must not fold; outputs equal to float rounding."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import random_sparse, require_kernels  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}


def _linear_then(k: int, n: int, after, *, gelu: bool = False, seed: int = 0):
    """x [2, 5, k] → sparse Linear (+ bias) [→ Gelu] → after(y) → Result; returns the model and W."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)
    w = random_sparse(rng, n, k, 0.85)
    x = ops.parameter([2, 5, k], np.float32, name="x")
    y = ops.add(
        ops.matmul(x, ops.constant(w), False, True), ops.constant(rng.standard_normal(n).astype(np.float32))
    )
    if gelu:
        y = ops.gelu(y, "erf")
    outputs = after(y)
    return ov.Model([o.output(0) if hasattr(o, "output") else o for o in outputs], [x]), w


def _heads_scaled(y, c=0.42, shape=(1, 1, 1, 1)):
    import openvino.opset13 as ops

    heads = ops.transpose(ops.reshape(y, [2, 5, 4, 8], False), [0, 2, 1, 3])
    return [ops.multiply(heads, ops.constant(np.full(shape, c, np.float32)))]


def _compare(kernels, model, **options):
    """(the rewritten model's output, the dense model's, the report, the rewritten model) on one feed."""
    import openvino as ov

    core = ov.Core()
    k = model.inputs[0].get_partial_shape()[2].get_length()
    x = np.random.default_rng(1).standard_normal((2, 5, k)).astype(np.float32)
    want = core.compile_model(model.clone(), "CPU", F32)([x])[0]
    rewritten = model.clone()
    report = kernels.rewrite(rewritten, "on", **options)
    kernels.register(core)
    return core.compile_model(rewritten, "CPU", F32)([x])[0], want, report, rewritten


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


def test_a_scalar_multiply_behind_reshape_and_transpose_goes_into_the_weights(kernels):
    model, _ = _linear_then(16, 32, _heads_scaled)
    got, want, report, rewritten = _compare(kernels, model)
    assert report.output_scales == 1 and "1 scalar Multiplies folded into the weights" in report.summary()
    assert "Multiply" not in [op.get_type_name() for op in rewritten.get_ordered_ops()]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    kept, _, kept_report, left = _compare(kernels, _linear_then(16, 32, _heads_scaled)[0], fold_scales=False)
    assert kept_report.output_scales == 0 and "Multiply" in [
        op.get_type_name() for op in left.get_ordered_ops()
    ]
    np.testing.assert_allclose(got, kept, rtol=1e-5, atol=1e-6)  # float rounding only


@pytest.mark.parametrize(
    "case",
    [
        "gelu",  # the activation does not commute with a scale
        "vector",  # per-feature factors are not one scalar
        "zero",  # a zero would turn every weight into one
        "broadcast",  # the constant enlarges the tensor
        "second reader",  # another node reads the unscaled values
    ],
)
def test_what_must_not_fold_stays(kernels, case):
    import openvino.opset13 as ops

    def after(y):
        if case == "vector":
            return _heads_scaled(y, shape=(1, 1, 1, 8))
        if case == "zero":
            return _heads_scaled(y, c=0.0)
        if case == "broadcast":
            return _heads_scaled(y, shape=(3, 1, 1, 1, 1))
        if case == "second reader":
            return [*_heads_scaled(y), ops.relu(y)]
        return _heads_scaled(y)

    model, _ = _linear_then(16, 32, after, gelu=case == "gelu")
    got, want, report, rewritten = _compare(kernels, model)
    assert report.sparse_layers and report.output_scales == 0, report.summary()
    assert "Multiply" in [op.get_type_name() for op in rewritten.get_ordered_ops()]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("folder_kind", ["fp32", "int8"])
def test_exported_attention_scales_fold_into_q_and_k(folder_kind, export_once, calibrate_once):
    """The exported tiny BERT: per layer Q's and K's head_dim^(-1/4) go into the Q/K/V node's Q and K rows
    (FP32 values or INT8 row scales, and their biases), V's rows stay; the outputs move by rounding only."""
    import openvino as ov

    kernels = require_kernels()
    from pruneofa.kernels.rewrite import SPLIT_OP_TYPE, layer_weights

    if folder_kind == "fp32":
        folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    else:
        folder = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    core = ov.Core()
    kernels.register(core)
    runs = {}
    for fold in (True, False):
        model = core.read_model(str(folder / "openvino_model.xml"))
        report = kernels.rewrite(model, "on", fold_scales=fold)
        rng = np.random.default_rng(3)  # the same feed for both
        feed = {}
        for port in model.inputs:
            name = port.get_any_name()
            shape = (2, 9)
            feed[name] = (
                np.ones(shape, np.int64) if "mask" in name
                else np.zeros(shape, np.int64) if "type" in name
                else rng.integers(5, 900, shape).astype(np.int64)
            )  # fmt: skip
        splits = [op for op in model.get_ordered_ops() if op.get_type_name() == SPLIT_OP_TYPE]
        runs[fold] = (
            report,
            [layer_weights(node) for node in splits],
            core.compile_model(model, "CPU", F32)(feed)[0],
        )
    (folded, folded_weights, got), (kept, kept_weights, want) = runs[True], runs[False]
    assert folded.output_scales == 4 and kept.output_scales == 0  # 2 layers × Q and K
    c = np.float32(8**-0.25)  # the tiny BERT's head_dim is 8
    for new, old in zip(folded_weights, kept_weights, strict=True):
        (q, k, v), (q0, k0, v0) = new.values(), old.values()
        for part, base in ((q, q0), (k, k0)):
            field = "scales" if base.scales is not None else "values"
            np.testing.assert_allclose(getattr(part, field), getattr(base, field) * c, rtol=1e-6)
            np.testing.assert_array_equal(part.col_idx, base.col_idx)  # the pattern itself is untouched
            if base.bias is None:  # the export left no bias Add to fuse
                assert part.bias is None
            else:
                np.testing.assert_allclose(part.bias, base.bias * c, rtol=1e-6)
        np.testing.assert_array_equal(v.values, v0.values)
    scale = float(np.abs(want).max())
    bound = 1e-5 if folder_kind == "fp32" else 0.02  # INT8: a rounding may move a requantized step
    assert float(np.abs(got - want).max()) <= bound * scale
