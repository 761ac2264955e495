"""benchmarks/pruning_logs.py: a real (tiny) pruning run's logged sparsity and learning rate against the
paper's formulas written out independently, and the distillation share from the logged loss terms."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from pruneofa.cli import main
from pruneofa.training.recipe import load_recipe

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def logs():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("pruning_logs", BENCHMARKS / "pruning_logs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory, pipeline, corpus):
    """40 steps of pruneofa-90 with a mask update every 8 steps and 1 warm-up step, logged every step."""
    folder = tmp_path_factory.mktemp("logs")
    recipe = load_recipe("pruneofa-90").model_dump(mode="json")
    recipe["schedule"]["frequency"] = 0.2
    recipe["optimizer"]["warmup_ratio"] = 0.025
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    model = str(pipeline / "mlm")
    argv = [
        "prune",
        model,
        "--teacher",
        model,
        "--corpus",
        str(corpus),
        "--recipe",
        str(folder / "recipe.yaml"),
    ]
    budget = [
        "--steps",
        "40",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
        "--logging-steps",
        "1",
        "--save-steps",
        "100",
    ]
    assert main([*argv, *budget, "--output", str(folder / "run")]) == 0
    return folder / "run"


def test_a_pruning_run_follows_the_cubic_schedule_and_the_rewinding_rate(logs, pruned_run, tmp_path):
    run = logs.run_from_folder(pruned_run)
    lines, series = logs.check(run)
    assert len(series["sparsity"]) == len(series["learning_rate"]) == 40
    assert lines[1].startswith("  sparsity: matches") and lines[2].startswith("  learning_rate: matches"), (
        lines
    )
    # the reference's shape at known steps (logged after k steps: masks of step k − 1, the rate step k used)
    sparsity = {step: logged for step, logged, _ in series["sparsity"]}
    assert sparsity[8] == 0.0 and sparsity[21] == pytest.approx(0.9, abs=2e-3)  # ramp over steps 0 … 20
    assert sparsity[9] == pytest.approx(0.9 * (1 - (1 - 8 / 20) ** 3), abs=2e-3)  # the update at step 8
    rates = {step: logged for step, logged, _ in series["learning_rate"]}
    # in the ramp the rate decays from each update (steps 0, 8, 16) and rewinds to the peak at the next:
    # (T − R − (t mod 8)) / (T − R − W) = (20 − 7) / 19 at step 15, capped at 1 near the update
    assert rates[16] == pytest.approx(5e-5 * 13 / 19) and rates[17] == rates[9] == pytest.approx(5e-5)
    assert rates[40] == pytest.approx(5e-5 * (40 - 39) / 19)  # after the ramp: linear to 0
    # loss terms are logged: the distillation share (KL + pooler MSE) is reported at the start and the end
    assert "distillation share of the loss" in lines[3]
    entry = run.log[-1]
    assert {"mlm_loss", "kd_loss", "pooler_loss"} <= entry.keys()
    out = tmp_path / "logs.png"
    logs.plot(run, series, out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_a_rate_that_departs_from_the_reference_is_reported(logs, pruned_run):
    run = logs.run_from_folder(pruned_run)
    run.log = [{**e, "learning_rate": e["learning_rate"] * (1.1 if e["step"] > 20 else 1.0)} for e in run.log]
    lines, _ = logs.check(run)
    assert lines[2].startswith("  learning_rate: DEPARTS from the reference"), lines
