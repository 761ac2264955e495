"""Static-shape copies of a model with sparse kernels (``core.runtime.Engine``): the same results as the
dynamic model, compiled in the background for the first N shapes, bounded, and never a failure a caller
sees (a copy that cannot compile leaves the dynamic model answering)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pruneofa import kernels
from pruneofa.core.errors import InputError
from pruneofa.core.runtime import load_parity_samples, model_inputs
from pruneofa.deploy.pipeline import load
from pruneofa.deploy.sparse_kernels import DEFAULT_STATIC_SHAPES, STATIC_SHAPES_ENV

TEXTS = load_parity_samples()["sentences"][:4]

pytestmark = pytest.mark.skipif(
    not kernels.available(), reason="the sparse kernels library is not built here"
)


@pytest.fixture(scope="module")
def sparse_ir(export_once):
    return export_once("bert", "text-classification", "unstructured90")["openvino"].output


def _feed(pipe, texts):
    return pipe.encoder.encode(texts)


def engine_inputs(engine, feed):
    return model_inputs(feed, engine.input_names)


def _shape_key(pipe, feed):
    return tuple(tuple(np.asarray(feed[name]).shape) for name in pipe.engine.input_names)


def test_a_static_copy_gives_the_dynamic_results_and_is_used(sparse_ir, monkeypatch):
    monkeypatch.delenv(STATIC_SHAPES_ENV, raising=False)
    pipe = load(sparse_ir, sparse_kernels="on")
    engine = pipe.engine
    assert engine.static_limit == DEFAULT_STATIC_SHAPES
    feed = _feed(pipe, TEXTS)
    dynamic = engine._dynamic.infer(engine_inputs(engine, feed), engine.names)[0]
    assert engine.specialize(feed) is True
    key = _shape_key(pipe, feed)
    assert engine.static_shape_list == [key]
    assert engine._runner(engine_inputs(engine, feed)) is engine._static[key]  # calls now take the copy
    np.testing.assert_allclose(engine(feed)[0], dynamic, atol=1e-5)
    dense = load(sparse_ir, sparse_kernels="off")
    assert dense.engine.static_limit == 0  # nothing rewritten: nothing to gain
    np.testing.assert_allclose(engine(feed)[0], dense.engine(feed)[0], atol=1e-4)
    shape = "x".join(map(str, key[0]))
    assert f"static-shape copies (up to {DEFAULT_STATIC_SHAPES}): {shape}" in pipe.describe()


@pytest.mark.parametrize("sparse_kernels", ["off", "auto"])
def test_static_shapes_all_gives_a_dense_model_its_copies_too(export_once, monkeypatch, sparse_kernels):
    """``static_shapes="all"`` (what ``pruneofa benchmark`` uses for every OpenVINO candidate): a dense
    model, or a sparse one with the kernels off, gets the same static-shape copies as a rewritten one, with
    the dynamic model's results; the default leaves them dynamic."""
    monkeypatch.delenv(STATIC_SHAPES_ENV, raising=False)
    folder = export_once("bert", "text-classification")["openvino"].output  # dense: nothing rewritten
    assert load(folder, sparse_kernels=sparse_kernels).engine.static_limit == 0
    pipe = load(folder, sparse_kernels=sparse_kernels, static_shapes="all")
    engine = pipe.engine
    assert engine.static_limit == DEFAULT_STATIC_SHAPES and not pipe.sparse_layers
    feed = _feed(pipe, TEXTS)
    dynamic = engine._dynamic.infer(engine_inputs(engine, feed), engine.names)[0]
    assert engine.specialize(feed) is True
    key = _shape_key(pipe, feed)
    assert engine._runner(engine_inputs(engine, feed)) is engine._static[key]
    np.testing.assert_allclose(engine(feed)[0], dynamic, atol=1e-5)
    monkeypatch.setenv(STATIC_SHAPES_ENV, "0")
    assert load(folder, sparse_kernels=sparse_kernels, static_shapes="all").engine.static_limit == 0
    with pytest.raises(InputError, match="static_shapes"):
        load(folder, static_shapes="some")


def test_the_number_of_copies_is_bounded_and_other_shapes_run_dynamic(sparse_ir, monkeypatch):
    monkeypatch.setenv(STATIC_SHAPES_ENV, "1")
    pipe = load(sparse_ir, sparse_kernels="on")
    reference = load(sparse_ir, sparse_kernels="off")
    first, second = _feed(pipe, TEXTS[:2]), _feed(pipe, TEXTS[:3])
    assert pipe.engine.specialize(first) is True
    assert pipe.engine.specialize(second) is False  # the limit is 1
    assert pipe.engine.static_shape_list == [_shape_key(pipe, first)]
    for feed in (first, second):
        np.testing.assert_allclose(pipe.engine(feed)[0], reference.engine(feed)[0], atol=1e-4)


def test_zero_turns_static_copies_off(sparse_ir, monkeypatch):
    monkeypatch.setenv(STATIC_SHAPES_ENV, "0")
    pipe = load(sparse_ir, sparse_kernels="on")
    assert pipe.engine.static_limit == 0 and pipe.engine.specialize(_feed(pipe, TEXTS)) is False
    assert "static-shape" not in pipe.describe()


@pytest.mark.parametrize("value", ["many", "-1", "65", "1.5"])
def test_a_bad_setting_is_one_clear_error(sparse_ir, monkeypatch, value):
    monkeypatch.setenv(STATIC_SHAPES_ENV, value)
    with pytest.raises(InputError, match=f"{STATIC_SHAPES_ENV}=.* is not a whole number from 0 to 64"):
        load(sparse_ir, sparse_kernels="on")


def test_a_copy_that_cannot_compile_leaves_the_dynamic_model_answering(sparse_ir, monkeypatch, caplog):
    monkeypatch.delenv(STATIC_SHAPES_ENV, raising=False)
    pipe = load(sparse_ir, sparse_kernels="on")
    expected = load(sparse_ir, sparse_kernels="off").engine(_feed(pipe, TEXTS))[0]

    class Unclonable:
        def clone(self):
            raise RuntimeError("no memory for another copy")

    monkeypatch.setattr(pipe.engine, "_model", Unclonable())
    feed = _feed(pipe, TEXTS)
    with caplog.at_level(logging.WARNING, logger="pruneofa.core.runtime"):
        assert pipe.engine.specialize(feed) is False
    assert "static-shape compilation" in caplog.text and "no memory for another copy" in caplog.text
    assert pipe.engine.specialize(feed) is False  # not retried
    np.testing.assert_allclose(pipe.engine(feed)[0], expected, atol=1e-4)


def test_calls_from_many_threads_while_copies_compile(sparse_ir, monkeypatch):
    monkeypatch.delenv(STATIC_SHAPES_ENV, raising=False)
    pipe = load(sparse_ir, sparse_kernels="on")
    reference = load(sparse_ir, sparse_kernels="off")
    feeds = [_feed(pipe, TEXTS[: n % 3 + 1]) for n in range(12)]
    expected = [reference.engine(feed)[0] for feed in feeds]
    with ThreadPoolExecutor(max_workers=4) as pool:  # the first calls start background compilations
        results = list(pool.map(lambda feed: pipe.engine(feed)[0], feeds))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    for feed in feeds[:3]:
        assert pipe.engine.specialize(feed) is True
    assert len(pipe.engine.static_shape_list) == 3


def test_serve_takes_static_shapes_all(export_once, monkeypatch):
    """``pruneofa serve --static-shapes all``: the served dense model gets its static-shape copies."""
    from pruneofa.deploy.config import ServeConfig
    from pruneofa.deploy.serving.app import load_for_serving

    monkeypatch.delenv(STATIC_SHAPES_ENV, raising=False)
    folder = export_once("bert", "text-classification")["openvino"].output
    assert load_for_serving(folder, ServeConfig()).engine.static_limit == 0
    served = load_for_serving(folder, ServeConfig(static_shapes="all"))
    assert served.engine.static_limit == DEFAULT_STATIC_SHAPES
