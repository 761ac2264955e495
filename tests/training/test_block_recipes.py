"""The block recipes of the sparse kernels' formats: ``pruneofa-90-block1x4`` (1 output row × 4 consecutive
inputs, the INT8 1×4 format) and ``pruneofa-90-block4x1`` (4 output rows × 1 input, the FP32 4×1 format).
They load and validate, a pruning run removes 90 % of every layer's blocks as whole blocks, and sparse
transfer keeps every pruned block at zero."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_TRAINING_BUDGET
from safetensors.torch import load_file

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest
from pruneofa.training.recipe import load_recipe

BUDGET = TINY_TRAINING_BUDGET
SHAPES = {"pruneofa-90-block1x4": (1, 4), "pruneofa-90-block4x1": (4, 1)}


def _pruned_weights(folder) -> dict[str, torch.Tensor]:
    """The encoder Linear weights and the pooler's (the recipes' scope), by name."""
    weights = load_file(str(folder / "model.safetensors"))
    return {
        name: value
        for name, value in weights.items()
        if value.dim() == 2 and name.endswith(".weight") and (".encoder." in name or ".pooler." in name)
    }


def _zero_blocks(weight: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Per block, whether it is all zero; fails if any block is partly zero (not a whole-block pattern)."""
    rows, cols = shape
    zero = (weight == 0).reshape(weight.shape[0] // rows, rows, weight.shape[1] // cols, cols)
    all_zero, any_zero = zero.all(dim=(1, 3)), zero.any(dim=(1, 3))
    assert torch.equal(all_zero, any_zero), "a block is partly zero"
    return all_zero


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_block_recipes_load_as_pruneofa_90_with_block_masks(name):
    recipe, reference = load_recipe(name), load_recipe("pruneofa-90")
    assert recipe.name == name
    assert recipe.pruning.pattern == "block" and recipe.pruning.block_shape == SHAPES[name]
    assert recipe.pruning.scope == "uniform" and recipe.pruning.include == reference.pruning.include
    # the same method as pruneofa-90 otherwise: schedule, distillation, optimizer (rewinding included)
    assert recipe.schedule == reference.schedule
    assert recipe.distillation == reference.distillation
    assert recipe.optimizer == reference.optimizer


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_block_recipe_prunes_whole_blocks_and_transfer_keeps_them(tmp_path, pipeline, corpus, sst2_dir, name):
    shape = SHAPES[name]
    model = str(pipeline / "mlm")
    pruned, tuned = tmp_path / "pruned", tmp_path / "tuned"
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--recipe", name]
    assert main([*argv, *BUDGET, "--output", str(pruned)]) == 0
    assert read_manifest(pruned).training.recipe == name
    before = _pruned_weights(pruned)
    assert any(".pooler." in key for key in before) and len(before) == 13  # 2 layers × 6 + pooler
    blocks = {}
    for key, weight in before.items():
        blocks[key] = _zero_blocks(weight, shape)
        # 90 % of the layer's blocks, to the nearest whole block (the mask code's exact count)
        assert int(blocks[key].sum()) == round(0.9 * blocks[key].numel()), key

    transfer = [
        "finetune",
        str(pruned),
        "--task",
        "sst2",
        "--data",
        str(sst2_dir),
        "--teacher",
        str(pipeline / "sst2-teacher"),
    ]
    assert main([*transfer, *BUDGET, "--output", str(tuned)]) == 0
    after = _pruned_weights(tuned)
    assert after.keys() == before.keys()
    for key, weight in after.items():
        assert torch.equal(_zero_blocks(weight, shape), blocks[key]), key  # every block kept, none regrown
        assert not torch.equal(weight, before[key]), key  # the kept weights did train


def test_a_block_shape_that_does_not_divide_a_layer_is_refused_before_training(
    tmp_path, pipeline, corpus, capsys
):
    recipe = tmp_path / "blocks.yaml"
    recipe.write_text(
        "name: b\npruning: {pattern: block, block_shape: [1, 5]}\nschedule: {final_sparsity: 0.9}\n"
    )
    model = str(pipeline / "mlm")
    argv = ["prune", model, "--teacher", model, "--corpus", str(corpus), "--recipe", str(recipe)]
    assert main([*argv, *BUDGET, "--output", str(tmp_path / "o")]) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # not progress bars
    assert len(errors) == 1 and "block_shape 1x5 does not divide" in errors[0], errors
    assert not (tmp_path / "o").exists()


def test_a_block_shape_below_one_is_refused_with_one_line(tmp_path):
    from pruneofa.core.errors import InputError

    recipe = tmp_path / "blocks.yaml"
    recipe.write_text(
        "name: b\npruning: {pattern: block, block_shape: [0, 4]}\nschedule: {final_sparsity: 0.9}\n"
    )
    with pytest.raises(InputError, match="block_shape"):
        load_recipe(recipe)
