"""``pruneofa export … > out.txt`` and ``pruneofa calibrate … > out.txt`` leave the report alone on stdout:
library progress bars (transformers' tqdm bars, NNCF's rich bars) go to stderr or nowhere, never into
the report; ``--quiet`` silences NNCF's bars too."""

from __future__ import annotations

import subprocess
import sys

BARS = (
    "━",
    "█",
    "%|",
    "it/s]",
    "Statistics collection",
    "Applying",
    "Loading weights",
    "Writing model shards",
)


def _pruneofa(*argv: str, cwd) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa", *argv], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return result


def test_export_and_calibrate_print_no_bars_on_stdout(make_model, sst2_dir, tmp_path):
    model = make_model("bert", "text-classification", "unstructured90")
    exported = tmp_path / "ov"
    export = _pruneofa(
        "export",
        str(model),
        "--target",
        "openvino",
        "--output",
        str(exported),
        "--no-tokenizer",
        cwd=tmp_path,
    )
    calibrate = ["calibrate", str(exported), "--task", "sst2", "--data", str(sst2_dir), "--samples", "16"]
    calibrate += ["--parity-samples", "16", "--min-parity-agreement", "0.5"]
    loud = _pruneofa(*calibrate, "--output", str(tmp_path / "int8"), cwd=tmp_path)
    for result in (export, loud):
        assert result.stdout.strip(), "the report is on stdout"
        assert not [bar for bar in BARS if bar in result.stdout], result.stdout
    assert "INT8 calibration: nncf-ptq" in loud.stdout
    quiet = _pruneofa(*calibrate, "--output", str(tmp_path / "int8-quiet"), "--quiet", cwd=tmp_path)
    assert quiet.stdout == "" and not [bar for bar in BARS if bar in quiet.stderr], quiet.stderr
