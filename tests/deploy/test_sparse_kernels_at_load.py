"""pruneofa's sparse kernels where deploy opens a folder: ``load``, ``validate`` and ``benchmark`` rewrite
sparse layers at load time, say which ran sparse and why the others did not, and give the dense results."""

from __future__ import annotations

import numpy as np
import pytest

from pruneofa import kernels
from pruneofa.cli import main
from pruneofa.core.runtime import load_parity_samples
from pruneofa.deploy.pipeline import load

TEXTS = load_parity_samples()["sentences"][:5]


def _logits(pipe) -> np.ndarray:
    return pipe.logits(TEXTS)


@pytest.fixture(scope="module")
def sparse_ir(export_once):
    return export_once("bert", "text-classification", "unstructured90")["openvino"].output


def test_kernels_on_give_the_dense_results_and_say_which_layers_ran_sparse(sparse_ir):
    dense = load(sparse_ir, sparse_kernels="off")
    sparse = load(sparse_ir, sparse_kernels="on")
    np.testing.assert_allclose(_logits(sparse), _logits(dense), atol=1e-4)
    assert dense.sparse_report is None and "sparse kernels off" in dense.describe()
    report = sparse.sparse_report
    # 2 encoder layers × (q, k, v, out, up, down) at 90 %, plus the dense pooler and classifier
    assert report is not None and len(report.layers) == 14
    if kernels.available():
        assert len(report.sparse_layers) == 14  # "on" forces every eligible layer, dense ones too
        assert sorted(round(layer.sparsity, 1) for layer in report.sparse_layers)[2:] == [0.9] * 12
        assert "14/14 Linear layers sparse" in sparse.describe()
        # named as in the source model, from the export's accounting in pruneofa.json
        assert "bert.encoder.layer.0.attention.self.query" in sparse.sparse_layers
        assert "classifier" in sparse.sparse_layers
    else:
        assert "unavailable" in sparse.describe()


def test_onnx_runtime_says_why_the_kernels_do_not_apply(export_once):
    folder = export_once("bert", "text-classification", "unstructured90")["onnx"].output
    pipe = load(folder)
    assert pipe.runtime == "onnxruntime" and pipe.sparse_report is None
    assert "not used on ONNX Runtime" in pipe.describe()
    assert load(folder, "openvino", sparse_kernels="on").sparse_report is not None  # OpenVINO reads ONNX too


def test_without_the_library_everything_runs_dense(sparse_ir, monkeypatch):
    from pruneofa.kernels import library

    expected = _logits(load(sparse_ir, sparse_kernels="off"))
    monkeypatch.setenv("PRUNEOFA_KERNELS_DISABLE", "1")
    library.reset()
    try:
        pipe = load(sparse_ir, sparse_kernels="on")
        assert not pipe.sparse_report.sparse_layers and "unavailable" in pipe.describe()
        np.testing.assert_allclose(_logits(pipe), expected, atol=1e-5)
    finally:
        monkeypatch.delenv("PRUNEOFA_KERNELS_DISABLE")
        library.reset()


def test_validate_runs_the_candidate_with_kernels_against_a_plain_reference(sparse_ir, sst2_dir, capsys):
    code = main(
        ["validate", str(sparse_ir), "--reference", str(sparse_ir), "--data", str(sst2_dir), "--task", "sst2"]
        + [
            "--sparse-kernels",
            "on",
            "--limit",
            "24",
            "--max-drop",
            "0",
            "--min-label-agreement",
            "1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "candidate sparse kernels" in out


def test_benchmark_names_the_sparse_layers_and_measures_the_kernels_off_twin(sparse_ir, tmp_path):
    from pruneofa.deploy.benchmarking import benchmark_model, markdown_table
    from pruneofa.deploy.config import BenchmarkConfig

    report = benchmark_model(
        [str(sparse_ir)],
        BenchmarkConfig(
            vs=[], batches=[1], duration=0.3, repeats=1, warmup=1, sparse_kernels="on", output=tmp_path / "b"
        ),
        quiet=True,
    )
    table = markdown_table(report)
    assert report.load_average is not None and "Machine load average" in table
    if not kernels.available():
        assert len(report.variants) == 1 and "unavailable" in table
        return
    candidate, twin = report.variants
    assert len(candidate.sparse_layers) == 14 and "+ sparse kernels" in candidate.label
    assert twin.dense_twin_of == candidate.label and not twin.sparse_layers
    assert "each batch runs on a static-shape copy" in candidate.sparse_kernels
    assert "each batch runs on a static-shape copy" in twin.sparse_kernels  # like with like (docs/deploy.md)
    assert (
        "layers that ran sparse (14): bert.encoder.layer.0" in table
        and "faster with sparse kernels than without" in table
    )


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("task", ["text-classification", "question-answering", "token-classification"])
def test_every_architecture_and_task_runs_sparse_with_the_dense_outputs(export_once, arch, task):
    """Every test architecture and task at 90 %: all Linear layers on the kernels (each FFN one pair node,
    each Q/K/V one split node), outputs equal to the dense run to 1e-4 on a padded batch."""
    from pruneofa.core.manifest import read_manifest

    if not kernels.available():
        pytest.skip("pruneofa kernels could not be built here (no compiler?)")
    folder = export_once(arch, task, "unstructured90", targets=["openvino"])["openvino"].output
    dense, sparse = load(folder, sparse_kernels="off"), load(folder, sparse_kernels="on")
    summary = sparse.sparse_report.summary()
    assert "2 pairs fused" in summary and "2 shared-input groups fused" in summary, summary
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 300, (3, 21)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 15:] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    feed = {name: feed[name] for name in read_manifest(folder).export.inputs}
    for want, got in zip(dense.engine(feed), sparse.engine(feed), strict=True):
        keep = mask.astype(bool) if want.shape[:2] == mask.shape else slice(None)
        np.testing.assert_allclose(got[keep], want[keep], rtol=0, atol=1e-4)
