"""``pruneofa export --sparse-ir``: an extra IR with pruneofa's SparseLinear op, checked position for
position against the standard IR, which stays in the folder for every other tool."""

from __future__ import annotations

import numpy as np
import pytest

from pruneofa import kernels
from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest

pytestmark = pytest.mark.skipif(
    not kernels.available(), reason="the kernels extension could not be built here"
)


def test_sparse_ir_holds_the_op_with_the_same_weights_and_outputs(make_model, tmp_path, capsys):
    import openvino as ov

    out = tmp_path / "sparse90"
    code = main(
        ["export", str(make_model("bert", "text-classification", "unstructured90")), "--target", "openvino"]
        + ["--output", str(out), "--sparse-ir", "--sparse-kernels", "on", "--parity-samples", "8"]
    )
    text = capsys.readouterr().out
    assert code == 0
    info = read_manifest(out).export.sparse_ir
    assert info.weights_identical and info.max_abs_error <= 1e-4
    assert info.linear_layers == 14 and info.sparse_layers == 14
    assert (out / "openvino_model_sparse.xml").is_file() and (out / "openvino_model.xml").is_file()
    assert "sparse IR: openvino_model_sparse.xml" in text
    with pytest.raises(RuntimeError):  # without the extension the op is unknown: an explicit extra
        ov.Core().read_model(str(out / "openvino_model_sparse.xml"))
    core = ov.Core()
    model = kernels.read_sparse_ir(core, out / "openvino_model_sparse.xml")
    weights = [w for node in kernels.sparse_nodes(model) for w in kernels.dense_weights(node).values()]
    assert len(weights) == info.sparse_layers
    assert sum(np.mean(w == 0) > 0.85 for w in weights) == 12  # the encoder's


def test_sparse_ir_needs_the_openvino_target(make_model, tmp_path, capsys):
    code = main(["export", str(make_model("bert", "text-classification")), "--target", "onnx", "--sparse-ir"])
    assert code == 2 and "--sparse-ir writes an OpenVINO IR" in capsys.readouterr().err


def test_sparse_ir_of_a_dense_model_is_refused_and_nothing_is_written(make_model, tmp_path, capsys):
    out = tmp_path / "dense"
    code = main(
        [
            "export",
            str(make_model("bert", "text-classification")),
            "--target",
            "openvino",
            "--output",
            str(out),
        ]
        + ["--sparse-ir", "--parity-samples", "4", "--quiet"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert (
        "--sparse-ir: none of the 14 Linear layers is sparse enough" in err[-1]
        and "prune the model" in err[-1]
    )
