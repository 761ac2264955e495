"""Training shows step/total, pace and ETA, in a terminal (a bar) and in logs (one line per logging step)."""

from __future__ import annotations

import re
import subprocess
import sys

from pruneofa.training.progress import StepProgressCallback, format_duration, progress_line


def test_format_duration_reads_as_hours_minutes_seconds():
    assert format_duration(4.2) == "4s"
    assert format_duration(65) == "1m05s"
    assert format_duration(3725) == "1h02m05s"
    assert format_duration(-3) == "0s"


def test_progress_line_names_step_total_pace_eta_and_losses():
    line = progress_line(
        "prune", 40, 300, 2.1, {"loss": 3.2141, "kd_loss": 1.02, "sparsity": 0.45, "epoch": 1.0}
    )
    assert line.startswith("prune: step 40/300 (13 %)")
    assert "2.10 s/step" in line and "ETA 9m06s" in line  # 260 steps left × 2.1 s
    assert "loss 3.214" in line and "kd 1.02" in line and "sparsity 0.450" in line
    assert "epoch" not in line
    assert "ETA" not in progress_line("prune", 0, 300, None, {"loss": 1.0})  # no pace before a step ran


def test_a_training_command_logs_progress_lines_not_bare_dicts_nor_library_bars(tmp_path, make_model, corpus):
    base = str(make_model("bert", "feature-extraction"))
    argv = ["teacher", base, "--corpus", str(corpus), "--output", str(tmp_path / "mlm"),
            "--steps", "4", "--batch-size", "2", "--seq-len", "32", "--logging-steps", "2"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa", *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "teacher: step " in line]
    steps = [re.search(r"step (\d+)/4 ", line) for line in lines]
    assert [int(m.group(1)) for m in steps if m] == [2, 4], result.stderr
    assert all("s/step" in line and "ETA" in line and "loss " in line for line in lines)
    assert "{'loss'" not in result.stdout  # the Trainer's bare dictionaries are gone
    assert "Loading weights" not in result.stderr and "Writing model shards" not in result.stderr


def test_in_a_terminal_a_bar_counts_the_steps(capsys):
    class State:
        global_step, max_steps, is_world_process_zero = 0, 5, True

    callback = StepProgressCallback("finetune", terminal=True)
    state = State()
    callback.on_train_begin(None, state, None)
    for step in range(1, 6):
        state.global_step = step
        callback.on_step_end(None, state, None)
    assert callback._bar.n == 5
    callback.on_log(None, state, None, logs={"loss": 0.5})
    callback.on_train_end(None, state, None)
    err = capsys.readouterr().err
    assert "finetune: step 5/5 (100 %)" in err and "5/5" in err
