"""Wrong paths, tasks and recipe names are refused before the training stack (torch) is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
from pruneofa.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch was imported before the refusal"
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "{model}", "--teacher", "{model}", "--corpus", "{model}", "--recipe", "nosuch"], "unknown recipe"),
        (["prune", "{model}", "--teacher", "{model}", "--corpus", "{model}", "--recipe", "x.yaml"], "does not exist"),
        (["prune", "{model}", "--teacher", "./gone", "--corpus", "{model}", "--recipe", "pruneofa-90"], "--teacher"),
        (["prune", "{model}", "--teacher", "{model}", "--corpus", "./nothing.txt", "--recipe", "pruneofa-90"],
         "--corpus ./nothing.txt does not exist"),
        (["teacher", "{model}", "--task", "sst2"], "needs --data"),
        (["teacher", "{model}", "--task", "nosuchtask", "--data", "x"], "nosuchtask"),
        (["teacher", "{model}"], "either --corpus"),
        (["teacher", "./no/model/here", "--corpus", "{model}"], "does not exist"),
        (["finetune", "{model}", "--task", "sst2", "--data", "./missing-dir/"], "--data ./missing-dir/ does not exist"),
    ],
)  # fmt: skip
def test_refused_in_one_line_without_importing_torch(argv, message, make_model, tmp_path):
    model = str(make_model("bert", "feature-extraction"))
    args = [a.replace("{model}", model) for a in argv] + ["--output", str(tmp_path / "out")]
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_prune_offers_only_recipes_with_a_schedule():
    from pruneofa.core.errors import InputError
    from pruneofa.training.preflight import builtin_recipes, check_recipe

    assert "qat-two-stage" in builtin_recipes() and "qat-two-stage" not in builtin_recipes("schedule")
    assert "pruneofa-90" in builtin_recipes("schedule")
    with pytest.raises(
        InputError, match="has no schedule; 'pruneofa prune' takes one of: .*pruneofa-90"
    ) as error:
        check_recipe("qat-two-stage", "prune", "schedule")
    assert "qat-two-stage" not in str(error.value).split("takes one of")[1]
    check_recipe("qat-two-stage", "finetune")  # its distillation and optimizer serve a transfer


@pytest.mark.parametrize(
    ("command", "absent", "present"),
    [("prune", "--stride", "--mlm-probability"), ("finetune", "--mlm-probability", "--stride"),
     ("qat", "--mlm-probability", "--stride"), ("teacher", None, "--stride")],
)  # fmt: skip
def test_budget_flags_are_listed_only_where_they_apply(command, absent, present):
    result = subprocess.run(
        [sys.executable, "-m", "pruneofa", command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and present in result.stdout
    if absent:
        assert absent not in result.stdout
