"""``pruneofa info``: what a folder is about, for every kind of folder pruneofa writes."""

from __future__ import annotations

import subprocess
import sys

from pruneofa.cli import main


def test_info_of_a_training_folder_shows_recipe_budget_and_sparsity(pipeline, capsys):
    assert main(["info", str(pipeline / "sparse")]) == 0
    out = capsys.readouterr().out
    assert "Training (prune): mlm" in out and "recipe pruneofa-90" in out
    assert "budget:" in out and "steps × batch" in out
    assert "sparsity of 13 pruned Linear layers: mean 90.0" in out and "layer  0" in out
    assert main(["info", str(pipeline / "sparse-sst2")]) == 0
    out = capsys.readouterr().out
    assert "Training (finetune): sst2" in out and "metric accuracy" in out


def test_info_of_a_several_target_export_describes_each_target(export_once, capsys):
    parent = export_once("bert", "text-classification")["openvino"].output.parent
    assert main(["info", str(parent)]) == 0
    out = capsys.readouterr().out
    assert "2 folders written by pruneofa: onnx, openvino" in out
    assert out.count("written by 'pruneofa export'") == 2


def test_info_into_a_closed_pipe_ends_quietly(export_once):
    folder = export_once("bert", "text-classification")["openvino"].output
    script = (
        "import sys; from pruneofa.cli import main; "
        f"sys.exit(main(['info', {str(folder)!r}, '--per-tensor']))"
    )
    producer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert producer.stdout.readline()  # read one line, then go away, as `| head -1` does
    producer.stdout.close()
    _, err = producer.communicate(timeout=120)
    assert producer.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_sparse_transfer_logs_the_sparsity_it_keeps(pipeline):
    """Issue 16.7: finetune's log lines (and the manifest's curve) carry the locked sparsity, as prune's do."""
    from pruneofa.core.manifest import read_manifest

    curve = read_manifest(pipeline / "sparse-sst2").training.loss_curve
    assert curve and all(abs(entry["sparsity"] - 0.9) < 0.01 for entry in curve)
