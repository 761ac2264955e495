"""Q, K and V written in attention's heads' layout by the split op (``head_dim``; kernels.heads): on static
shapes the Reshape + Transpose behind each part go, with the same bits on every kernel path and format;
dynamic models get it in the deploy runtime's static-shape copies; bad ``head_dim`` values are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import require_kernels  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
SHAPE = (3, 11)  # sequences of 11 tokens: every token tile holds the end of one and the start of another


def _feed(model, shape=SHAPE) -> dict:
    rng = np.random.default_rng(3)
    feed = {}
    for port in model.inputs:
        name = port.get_any_name()
        if "mask" in name:
            mask = np.ones(shape, np.int64)
            mask[-1, shape[1] // 2 :] = 0  # padding in the batch
            feed[name] = mask
        elif "type" in name:
            feed[name] = np.zeros(shape, np.int64)
        else:
            feed[name] = rng.integers(5, 900, shape).astype(np.int64)
    return feed


def _run(core, xml: Path, fold: bool, shape=SHAPE):
    import pruneofa.kernels as kernels

    model = core.read_model(str(xml))
    model.reshape({port.get_any_name(): list(shape) for port in model.inputs})
    report = kernels.rewrite(model, "on", fold_heads=fold)
    transposes = [op.get_type_name() for op in model.get_ordered_ops()].count("Transpose")
    out = core.compile_model(model, "CPU", F32)(_feed(model, shape))[0]
    return out, report, transposes


@pytest.mark.parametrize("folder_kind", ["fp32", "int8"])
def test_static_model_writes_heads_layout_with_the_same_bits_on_every_path(
    folder_kind, export_once, calibrate_once
):
    import openvino as ov

    kernels = require_kernels()
    from pruneofa.kernels import library

    if folder_kind == "fp32":
        folder = export_once("bert", "text-classification", "unstructured90")["openvino"].output
    else:
        folder = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    xml = folder / "openvino_model.xml"
    core = ov.Core()
    kernels.register(core)
    before = library.isa()
    try:
        for isa in library.supported_isas():
            library.set_isa(isa)
            for shape in (SHAPE, (1, 16), (2, 40)):
                folded, report, left = _run(core, xml, True, shape)
                kept, kept_report, kept_left = _run(core, xml, False, shape)
                # 2 layers x Q, K, V; the tiny BERT's 4 heads of 8 (half a store group)
                assert report.heads_layout == 6 and kept_report.heads_layout == 0, report.summary()
                assert left == kept_left - 6
                assert "Q/K/V written in the heads' layout (6 Transposes removed)" in report.summary()
                np.testing.assert_array_equal(folded, kept, err_msg=f"{isa} {shape}")
    finally:
        if before is not None:
            library.set_isa(before)


def test_dynamic_model_is_left_alone_and_its_static_copies_fold(export_once):
    """The exported Reshape's target is dynamic (a Concat of ShapeOf and constants), so nothing proves it
    keeps batch and sequence: not folded. The runtime's static-shape copies are, through ``specialize``."""
    import openvino as ov

    from pruneofa.core.runtime import Engine
    from pruneofa.deploy.sparse_kernels import preparer

    kernels = require_kernels()
    xml = (
        export_once("bert", "text-classification", "unstructured90")["openvino"].output / "openvino_model.xml"
    )
    core = ov.Core()
    model = core.read_model(str(xml))
    report = kernels.rewrite(model, "on")
    assert report.heads_layout == 0 and report.sparse_layers
    engine = Engine(xml, "openvino", ("logits",), ov_config=F32, prepare=preparer("on"))
    feed = _feed(model)
    np.testing.assert_allclose(
        engine(feed)[0], core.compile_model(model, "CPU", F32)(feed)[0], rtol=0, atol=1e-6
    )
    assert engine.specialize(feed) and engine.static_shape_list
    assert engine.prepared.report.heads_layout == 6
    # against the same static copy without the fold (OpenVINO's static and dynamic compiles of one model
    # differ in the last bits by themselves)
    unfolded = model.clone()
    unfolded.reshape({port.get_any_name(): list(SHAPE) for port in unfolded.inputs})
    np.testing.assert_array_equal(engine(feed)[0], core.compile_model(unfolded, "CPU", F32)(feed)[0])


def test_saved_ir_keeps_head_dim(export_once, tmp_path):
    import openvino as ov

    kernels = require_kernels()
    xml = (
        export_once("bert", "text-classification", "unstructured90")["openvino"].output / "openvino_model.xml"
    )
    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({port.get_any_name(): list(SHAPE) for port in model.inputs})
    kernels.rewrite(model, "on")
    splits = [op for op in kernels.sparse_nodes(model) if op.get_type_name() == "SparseLinearSplit"]
    assert splits and all(int(op.get_attributes()["head_dim"]) == 8 for op in splits)
    expected = core.compile_model(model, "CPU", F32)(_feed(model))[0]
    again = kernels.read_sparse_ir(core, kernels.save_sparse_ir(model, tmp_path / "heads.xml"))
    reread = [op for op in again.get_ordered_ops() if op.get_type_name() == "SparseLinearSplit"]
    assert all(int(op.get_attributes()["head_dim"]) == 8 for op in reread)
    np.testing.assert_array_equal(core.compile_model(again, "CPU", F32)(_feed(model))[0], expected)


@pytest.mark.parametrize(
    ("head_dim", "rank", "message"),
    [
        (24, 3, "head_dim must be 0 or divide each part's 32 rows, got 24"),
        (64, 3, "head_dim must be 0 or divide each part's 32 rows, got 64"),
        (-16, 3, "got -16"),
        (16, 2, "the heads' layout needs X of rank 3"),
    ],
)
def test_a_bad_head_dim_is_refused(head_dim, rank, message):
    """head_dim is read from an IR like every attribute: a value the store cannot honour is refused when
    the node is built, with one line naming it."""
    import openvino.opset13 as ops

    from pruneofa.kernels import formats
    from pruneofa.kernels.rewrite import _create, make_split_node

    require_kernels()
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32)).astype(np.float32) * (rng.random((64, 32)) > 0.8)
    x = ops.parameter([2, 5, 32] if rank == 3 else [10, 32], np.float32, name="x")
    good = make_split_node(x.output(0), formats.pack(weight, block=1), 2, ["a", "b"])
    attributes = {**good.get_attributes(), "head_dim": head_dim}
    inputs = [good.input_value(i) for i in range(good.get_input_size())]
    with pytest.raises(Exception) as caught:
        _create("SparseLinearSplit", inputs, attributes)
    assert message in str(caught.value)
