"""The rewrite on folders written by ``pruneofa export`` / ``pruneofa calibrate`` (the deploy runtime's input).

Uses the session fixtures the deploy tests use with the same arguments, so a full-suite run exports and
calibrates once for both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import require_kernels  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}


def _feed(model, rng) -> dict:
    feed = {}
    for port in model.inputs:
        name = port.get_any_name()
        if "mask" in name:
            mask = np.ones((3, 11), np.int64)
            mask[1, 6:] = 0  # padding in the batch
            feed[name] = mask
        elif "type" in name:
            feed[name] = np.zeros((3, 11), np.int64)
        else:
            feed[name] = rng.integers(5, 90, (3, 11)).astype(np.int64)
    return feed


def test_exported_fp32_folder(export_once):
    import openvino as ov

    kernels = require_kernels()
    xml = (
        export_once("bert", "text-classification", "unstructured90")["openvino"].output / "openvino_model.xml"
    )
    core = ov.Core()
    model = core.read_model(str(xml))
    sparse, report = kernels.compile_sparse(core, xml, F32, mode="on")
    encoder = [layer for layer in report.layers if layer.sparsity is not None and layer.sparsity > 0.85]
    assert len(encoder) == 12 and all(layer.sparse and layer.format == "csr" for layer in encoder), (
        report.to_json()
    )
    feed = _feed(model, np.random.default_rng(0))
    dense = core.compile_model(model, "CPU", F32)
    np.testing.assert_allclose(sparse(feed)[0], dense(feed)[0], rtol=0, atol=1e-4)


def test_calibrated_int8_folder(calibrate_once):
    """An NNCF PTQ IR: INT8 weights become int8-csr (pruned zeros stay zeros), activations keep their
    FakeQuantize nodes, and the result stays close to OpenVINO's own INT8 execution."""
    import openvino as ov

    kernels = require_kernels()
    folder = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    xml = folder / "openvino_model.xml"
    core = ov.Core()
    model = core.read_model(str(xml))
    sparse, report = kernels.compile_sparse(core, xml, F32, mode="on")
    encoder = [layer for layer in report.layers if layer.sparsity is not None and layer.sparsity > 0.85]
    assert len(encoder) == 12, report.to_json()
    assert all(layer.sparse and layer.format.startswith("int8") for layer in encoder), report.to_json()
    feed = _feed(model, np.random.default_rng(1))
    dense = core.compile_model(model, "CPU", F32)(feed)[0]
    got = sparse(feed)[0]
    assert np.abs(got - dense).max() < 0.05 * max(1.0, float(np.abs(dense).max()))
    assert (got.argmax(-1) == dense.argmax(-1)).mean() >= 2 / 3
