"""The fast recipes (``pruneofa-90-fast``, ``pruneofa-90-block1x4-fast``, ``pruneofa-90-block4x1-fast``):
the paper's recipes with hidden-state distillation in place of the full-vocabulary logit KL and an ``auto``
teacher precision. They load as their base recipe with exactly those distillation fields changed, a typo in
the new field is refused with one line, and a tiny run logs the hidden-state and pooler terms, no logit KL,
and reaches the recipe's sparsity."""

from __future__ import annotations

import pytest
from conftest import TINY_TRAINING_BUDGET

from pruneofa.cli import main
from pruneofa.core.errors import InputError
from pruneofa.core.manifest import read_manifest
from pruneofa.training.recipe import builtin_recipes, load_recipe

FAST = {
    "pruneofa-90-fast": "pruneofa-90",
    "pruneofa-90-block1x4-fast": "pruneofa-90-block1x4",
    "pruneofa-90-block4x1-fast": "pruneofa-90-block4x1",
}
# the distillation the budget sweep ran as its hidden-state rows (benchmarks/budget_sweep.py), with the
# teacher's precision chosen by the CPU instead of asked for
FAST_DISTILLATION = {"alpha_kd": 0.0, "hidden_states": 1.0, "teacher_precision": "auto"}


@pytest.mark.parametrize("name", sorted(FAST))
def test_fast_recipe_is_its_base_with_only_the_distillation_changed(name):
    assert name in builtin_recipes()
    recipe, base = load_recipe(name), load_recipe(FAST[name])
    assert recipe.name == name
    assert recipe.distillation == base.distillation.model_copy(update=FAST_DISTILLATION)
    assert recipe.distillation.pooler == base.distillation.pooler == 1.0
    # pattern, schedule, optimizer (rewinding), transfer and QAT stages: the base recipe's
    assert recipe.model_dump(exclude={"name", "description", "distillation"}) == base.model_dump(
        exclude={"name", "description", "distillation"}
    )


def test_an_unknown_teacher_precision_is_refused_with_one_line(tmp_path):
    recipe = tmp_path / "fast.yaml"
    recipe.write_text(
        "name: f\nschedule: {final_sparsity: 0.9}\n"
        "distillation: {alpha_kd: 0.0, hidden_states: 1.0, teacher_precision: bf16}\n"
    )
    with pytest.raises(InputError, match="teacher_precision") as error:
        load_recipe(recipe)
    assert "\n" not in str(error.value)


def test_fast_recipe_distils_hidden_states_and_pooler_without_the_logit_kl(tmp_path, pipeline, corpus):
    model = str(pipeline / "mlm")
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--recipe", "pruneofa-90-fast"]
    assert main([*argv, *TINY_TRAINING_BUDGET, "--output", str(tmp_path / "o")]) == 0
    manifest = read_manifest(tmp_path / "o")
    assert manifest.training.recipe == "pruneofa-90-fast"
    curve = manifest.training.loss_curve
    assert curve and all("hidden_loss" in entry and "pooler_loss" in entry for entry in curve)
    assert not any("kd_loss" in entry for entry in curve)  # the teacher's MLM head never ran
    assert all(abs(value - 0.9) < 0.01 for value in manifest.training.layer_sparsity.values())
