"""The SparseLinear operation inside compiled OpenVINO models: dynamic shapes, streams, threads, concurrency."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import dense_reference, random_sparse, require_kernels, tolerance  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


def one_layer_model(weight, x_shape=(-1, -1, None)):
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa.kernels.rewrite import make_node

    shape = [d if d is not None else weight.in_features for d in x_shape]
    x = ops.parameter(shape, np.float32, name="x")
    node = make_node(x.output(0), weight, name="layer")
    return ov.Model([node.output(0)], [x], "one_sparse_layer")


def infer_in_threads(compiled, inputs: list[np.ndarray], repeats: int = 1) -> dict[int, list[np.ndarray]]:
    """Every input on its own thread and infer request, at once, ``repeats`` times; each one's outputs."""
    results: dict[int, list[np.ndarray]] = {}

    def worker(i: int) -> None:
        request = compiled.create_infer_request()
        for _ in range(repeats):
            results[i] = [out.copy() for out in request.infer([inputs[i]]).values()]

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def test_dynamic_batch_and_sequence(kernels):
    import openvino as ov

    from pruneofa.kernels import formats

    rng = np.random.default_rng(1)
    w = random_sparse(rng, 48, 40, 0.8)
    bias = rng.standard_normal(48).astype(np.float32)
    sw = formats.pack(w, bias=bias, block=1)
    core = ov.Core()
    kernels.register(core)
    kernels.register(core)  # idempotent
    compiled = core.compile_model(one_layer_model(sw), "CPU", F32)
    assert compiled.output(0).get_partial_shape().to_string() == "[?,?,48]"
    request = compiled.create_infer_request()
    for batch, seq in [(1, 1), (2, 7), (3, 33), (1, 128), (2, 7)]:
        x = rng.standard_normal((batch, seq, 40)).astype(np.float32)
        y = request.infer([x])[0]
        assert y.shape == (batch, seq, 48)
        np.testing.assert_allclose(y, dense_reference(x, w, bias), rtol=0, atol=tolerance(x, w))
    # Rank 2 activations and N = 1 work too.
    sw1 = formats.pack(random_sparse(rng, 1, 40, 0.5))
    compiled2 = core.compile_model(one_layer_model(sw1, x_shape=(-1, None)), "CPU", F32)
    x2 = rng.standard_normal((5, 40)).astype(np.float32)
    np.testing.assert_allclose(compiled2([x2])[0], x2 @ formats.densify(sw1).T, rtol=0, atol=tolerance(x2, w))


@pytest.mark.parametrize("streams,threads", [(1, 1), (1, 2), (2, 2)])
def test_streams_threads_and_concurrent_requests(kernels, streams, threads):
    import openvino as ov

    from pruneofa.kernels import formats

    rng = np.random.default_rng(streams * 10 + threads)
    w = random_sparse(rng, 96, 64, 0.9, block=4)
    q, scales = formats.quantize_rows(w)
    sw = formats.pack(w, int8=q, scales=scales, block=4)
    w_eff = q.astype(np.float32) * scales[:, None]
    core = ov.Core()
    kernels.register(core)
    compiled = core.compile_model(
        one_layer_model(sw), "CPU", {**F32, "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": threads}
    )
    inputs = [rng.standard_normal((1 + i % 3, 20 + 9 * i, 64)).astype(np.float32) for i in range(8)]
    results = {i: outs[0] for i, outs in infer_in_threads(compiled, inputs, repeats=3).items()}
    # Asynchronous requests in flight together. No Python callback (AsyncInferQueue.set_callback): a
    # callback left on OpenVINO's stream threads needs the GIL when the compiled model is collected later,
    # and that collection (holding the GIL) joins those threads: a deadlock seen once in a full run.
    requests = [compiled.create_infer_request() for _ in inputs]
    for request, x in zip(requests, inputs, strict=True):
        request.start_async([x])
    for request in requests:
        request.wait()
    async_results = {i: r.get_output_tensor(0).data.copy() for i, r in enumerate(requests)}
    del requests
    for i, x in enumerate(inputs):
        want = dense_reference(x, w_eff, None)
        np.testing.assert_allclose(results[i], want, rtol=0, atol=tolerance(x, w_eff))
        np.testing.assert_allclose(async_results[i], want, rtol=0, atol=tolerance(x, w_eff))


def test_saved_ir_round_trip(kernels, tmp_path):
    import openvino as ov

    from pruneofa.kernels import formats

    rng = np.random.default_rng(3)
    w = random_sparse(rng, 32, 24, 0.7)
    bias = rng.standard_normal(32).astype(np.float32)
    model = one_layer_model(formats.pack(w, bias=bias))
    xml = kernels.save_sparse_ir(model, tmp_path / "sparse.xml")
    assert 'version="pruneofa"' in xml.read_text() and 'type="SparseLinear"' in xml.read_text()
    with pytest.raises(RuntimeError):
        ov.Core().read_model(str(xml))  # the op needs the extension
    core = ov.Core()
    loaded = kernels.read_sparse_ir(core, xml)
    (node,) = kernels.sparse_nodes(loaded)
    np.testing.assert_array_equal(kernels.dense_weight(node), w)  # FP32 values kept exactly
    x = rng.standard_normal((2, 5, 24)).astype(np.float32)
    np.testing.assert_allclose(
        core.compile_model(loaded, "CPU", F32)([x])[0], dense_reference(x, w, bias), atol=1e-4
    )


def ffn_model(w1, b1, w2, b2):
    """x -> MatMul + Add + Gelu -> MatMul + Add, dense ops as an export writes them (dynamic batch/seq)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, -1, w1.shape[1]], np.float32, name="x")
    up = ops.gelu(ops.add(ops.matmul(x, ops.constant(w1), False, True), ops.constant(b1)), "erf")
    down = ops.add(ops.matmul(up, ops.constant(w2), False, True), ops.constant(b2))
    return ov.Model([down.output(0)], [x], "ffn")


@pytest.mark.parametrize("streams,threads", [(1, 1), (1, 2), (2, 2)])
def test_fused_pair_in_openvino(kernels, streams, threads, tmp_path):
    """The rewrite turns an FFN into one SparseLinearPair; dynamic shapes (fused and not: 1 token tile or
    several), streams, threads and concurrent requests all give the dense result; saved IR reads back."""
    import openvino as ov

    rng = np.random.default_rng(100 + streams * 10 + threads)
    w1, w2 = random_sparse(rng, 96, 40, 0.9), random_sparse(rng, 40, 96, 0.85, block=4)
    b1, b2 = rng.standard_normal(96).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    core = ov.Core()
    config = {**F32, "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": threads}
    dense = core.compile_model(ffn_model(w1, b1, w2, b2), "CPU", config)
    model = ffn_model(w1, b1, w2, b2)
    report = kernels.rewrite(model, mode="on")
    assert [node.get_type_name() for node in kernels.sparse_nodes(model)] == ["SparseLinearPair"]
    assert [layer.fused_with is not None for layer in report.layers] == [True, True]
    assert "1 pairs fused" in report.summary() and [layer.format for layer in report.layers] == [
        "csr",
        "block",
    ]
    kernels.register(core)
    sparse = core.compile_model(model, "CPU", config)
    inputs = [rng.standard_normal((1 + i % 3, 1 + 23 * i, 40)).astype(np.float32) for i in range(6)]
    results = {i: outs[0] for i, outs in infer_in_threads(sparse, inputs, repeats=2).items()}
    for i, x in enumerate(inputs):
        np.testing.assert_allclose(
            results[i], dense([x])[0], rtol=0, atol=1e-4, err_msg=f"input {i} {x.shape}"
        )
    xml = kernels.save_sparse_ir(model, tmp_path / "ffn.xml")
    assert 'type="SparseLinearPair"' in xml.read_text()
    core2 = ov.Core()
    (node,) = kernels.sparse_nodes(kernels.read_sparse_ir(core2, xml))
    weights = kernels.dense_weights(node)
    assert len(weights) == 2
    np.testing.assert_array_equal(weights[report.layers[0].name], w1)
    np.testing.assert_array_equal(weights[report.layers[1].name], w2)
    with pytest.raises(ValueError, match="use layer_weights"):
        kernels.dense_weight(node)


def siblings_model(weights, biases):
    """x -> one MatMul + Add per weight, all reading x (Q, K and V as an export writes them)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, -1, weights[0].shape[1]], np.float32, name="x")
    outs = []
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        matmul = ops.matmul(x, ops.constant(w), False, True)
        matmul.set_friendly_name(f"layer{i}")
        outs.append(ops.add(matmul, ops.constant(b)).output(0))
    return ov.Model(outs, [x], "siblings")


@pytest.mark.parametrize("streams,threads", [(1, 1), (2, 2)])
def test_shared_input_layers_run_as_one_split_node(kernels, streams, threads, tmp_path):
    """Three layers on one input become one SparseLinearSplit (a fourth, of another width, stays its own
    node); every output equals the dense model's with dynamic shapes, streams and concurrent requests;
    the saved IR reads back each layer's weight by name."""
    import openvino as ov

    rng = np.random.default_rng(200 + streams)
    weights = [random_sparse(rng, 48, 40, s) for s in (0.9, 0.85, 0.95)] + [random_sparse(rng, 24, 40, 0.9)]
    biases = [rng.standard_normal(w.shape[0]).astype(np.float32) for w in weights]
    core = ov.Core()
    config = {**F32, "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": threads}
    dense = core.compile_model(siblings_model(weights, biases), "CPU", config)
    model = siblings_model(weights, biases)
    report = kernels.rewrite(model, mode="on")
    assert sorted(node.get_type_name() for node in kernels.sparse_nodes(model)) == [
        "SparseLinear", "SparseLinearSplit"
    ]  # fmt: skip
    kinds = {layer.name: layer.fused_kind for layer in report.layers}
    assert kinds == {"layer0": "split", "layer1": "split", "layer2": "split", "layer3": None}
    assert "1 shared-input groups fused" in report.summary()
    kernels.register(core)
    sparse = core.compile_model(model, "CPU", config)
    inputs = [rng.standard_normal((1 + i % 2, 1 + 29 * i, 40)).astype(np.float32) for i in range(5)]
    results = infer_in_threads(sparse, inputs)
    for i, x in enumerate(inputs):
        want = list(dense([x]).values())
        assert [w.shape for w in want] == [r.shape for r in results[i]]
        for got, expected in zip(results[i], want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=f"input {i} {x.shape}")
    xml = kernels.save_sparse_ir(model, tmp_path / "siblings.xml")
    core2 = ov.Core()
    read = kernels.sparse_nodes(kernels.read_sparse_ir(core2, xml))
    by_name = {name: w for node in read for name, w in kernels.dense_weights(node).items()}
    assert sorted(by_name) == ["layer0", "layer1", "layer2", "layer3"]
    for i, weight in enumerate(weights):
        np.testing.assert_array_equal(by_name[f"layer{i}"], weight)


def test_stack_and_split_rows_round_trip():
    from pruneofa.kernels import formats

    rng = np.random.default_rng(5)
    parts = []
    for sparsity in (0.0, 0.9, 1.0):
        w = random_sparse(rng, 16, 12, sparsity, block=4)
        q, scales = formats.quantize_rows(w)
        parts.append(formats.pack(w, bias=rng.standard_normal(16), block=4, int8=q, scales=scales))
    stacked = formats.stack_rows(parts)
    np.testing.assert_array_equal(formats.densify(stacked), np.vstack([formats.densify(p) for p in parts]))
    for back, part in zip(formats.split_rows(stacked, 3), parts, strict=True):
        np.testing.assert_array_equal(formats.densify(back), formats.densify(part))
        np.testing.assert_array_equal(back.bias, part.bias)
    with pytest.raises(ValueError, match="share in_features"):
        formats.stack_rows([parts[0], formats.pack(random_sparse(rng, 16, 12, 0.5), block=1)])
    with pytest.raises(ValueError, match="equal parts"):
        formats.split_rows(stacked, 5)
