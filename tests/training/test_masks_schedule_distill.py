"""Masks, the cubic schedule, distillation losses, recipes and resumable pruning with the Trainer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import transformers
from conftest import tiny_config

from pruneofa.core.errors import InputError
from pruneofa.training.distill import DistillationConfig, combined_loss, kd_divergence, kd_loss
from pruneofa.training.masks import (
    PruningConfig,
    apply_pruning,
    lock_sparsity,
    pruned_modules,
    remove_pruning,
    sparsity_by_module,
    update_masks,
)
from pruneofa.training.recipe import load_recipe
from pruneofa.training.schedule import CubicSchedule


def _model(arch: str = "bert", seed: int = 0):
    torch.manual_seed(seed)
    cls = {
        "bert": transformers.BertForSequenceClassification,
        "distilbert": transformers.DistilBertForSequenceClassification,
        "roberta": transformers.RobertaForSequenceClassification,
    }[arch]
    return cls(tiny_config(arch, 120)).train()


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (4, 12), generator=g)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 3, (4,), generator=g),
    }


# --- schedule -----------------------------------------------------------------------------------------


def test_cubic_schedule_values_at_known_steps():
    s = CubicSchedule(initial_sparsity=0.0, final_sparsity=0.9, begin_step=100, end_step=1100, frequency=100)
    assert s.sparsity(0) == 0.0 and s.sparsity(100) == 0.0
    # halfway: 0.9 + (0 - 0.9) * (1 - 0.5)^3 = 0.9 - 0.9 / 8 = 0.7875
    assert s.sparsity(600) == pytest.approx(0.7875)
    # a tenth of the way: 0.9 - 0.9 * 0.9^3 = 0.9 - 0.6561 = 0.2439
    assert s.sparsity(200) == pytest.approx(0.2439)
    assert s.sparsity(1100) == 0.9 and s.sparsity(5000) == 0.9
    assert [t for t in range(0, 1300) if s.updates_at(t)] == list(range(100, 1201, 100))


def test_schedule_freeze_stops_updates():
    s = CubicSchedule(final_sparsity=0.5, end_step=10, frequency=5, freeze_step=20)
    assert [t for t in range(40) if s.updates_at(t)] == [0, 5, 10, 15]


@pytest.mark.parametrize("total", [2, 3, 4, 5, 7, 10, 300])
def test_every_run_length_reaches_the_final_sparsity_by_the_last_step(total):
    """A rehearsal's few steps (``pruneofa run --steps-scale 0.01``: 3 pruning steps) put the end and the
    freeze on the same step; the update there is still made, so the run ends at the recipe's sparsity."""
    schedule = load_recipe("pruneofa-90").schedule.at(total)
    updates = [step for step in range(total) if schedule.updates_at(step)]  # on_step_begin's steps
    reached = schedule.sparsity(updates[-1]) if updates else schedule.initial_sparsity
    # the callback's on_train_end makes it exact when the end step is the run's last (never begun) step
    assert reached == 0.9 or schedule.end_step >= total, (schedule, updates)
    frozen_from = schedule.freeze_step if schedule.freeze_step is not None else total
    assert all(step <= max(frozen_from, schedule.end_step) for step in updates)


def test_the_end_step_updates_when_the_freeze_is_on_it():
    s = CubicSchedule(final_sparsity=0.9, end_step=2, frequency=1, freeze_step=2)  # 3 steps of pruneofa-90
    assert [t for t in range(6) if s.updates_at(t)] == [0, 1, 2]
    assert s.sparsity(2) == 0.9


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(initial_sparsity=0.5, final_sparsity=0.3, end_step=10), "below initial_sparsity"),
        (dict(final_sparsity=0.9, begin_step=20, end_step=10), "before begin_step"),
        (dict(final_sparsity=1.0, end_step=10), "less than 1"),
    ],
)
def test_bad_schedules_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        CubicSchedule(**fields)


# --- masks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_default_scope_is_encoder_linears_and_pooler(arch):
    model = _model(arch)
    names = [m.name for m in apply_pruning(model, PruningConfig())]
    assert len([n for n in names if ".layer." in n]) == 12  # 2 layers × 6 Linear
    assert all("embeddings" not in n and "classifier" not in n and "pre_classifier" not in n for n in names)
    assert any("pooler" in n for n in names) == (arch == "bert")


def test_uniform_masks_hit_the_target_in_every_layer_and_survive_weight_decay():
    model = _model()
    config = PruningConfig()
    apply_pruning(model, config)
    update_masks(model, 0.9, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    for step in range(5):
        loss = model(**_batch(step)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, value in sparsity_by_module(model).items():
        assert value == pytest.approx(0.9, abs=1 / 1024), name
    masks = {m.name: m.mask.clone() for m in pruned_modules(model)}
    remove_pruning(model)
    for name, module in model.named_modules():
        if name in masks:
            assert torch.equal(
                module.weight == 0, masks[name] == 0
            )  # exactly the masked positions, exactly zero


def test_pruned_weights_never_regrow_when_masks_are_recomputed():
    model = _model()
    config = PruningConfig()
    apply_pruning(model, config)
    update_masks(model, 0.5, config)
    before = {m.name: m.mask.clone() for m in pruned_modules(model)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-2)
    for step in range(3):
        model(**_batch(step)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    update_masks(model, 0.7, config)
    for module in pruned_modules(model):
        assert not bool(((before[module.name] == 0) & (module.mask == 1)).any()), module.name


def test_global_scope_hits_the_target_overall():
    model = _model()
    config = PruningConfig(scope="global")
    modules = apply_pruning(model, config)
    update_masks(model, 0.8, config)
    zeros = sum(int((m.weight == 0).sum()) for m in modules)
    total = sum(m.weight.numel() for m in modules)
    assert zeros / total == pytest.approx(0.8, abs=1e-4)


def test_block_pattern_zeroes_whole_blocks():
    model = _model()
    config = PruningConfig(pattern="block", block_shape=(1, 4))
    modules = apply_pruning(model, config)
    update_masks(model, 0.75, config)
    for m in modules:
        blocks = (m.weight == 0).reshape(m.weight.shape[0], -1, 4)
        assert bool((blocks.all(-1) | (~blocks).all(-1)).all()), (
            m.name
        )  # every 1×4 block all zero or all kept
        assert float((m.weight == 0).float().mean()) == pytest.approx(0.75, abs=0.02)


def test_structured_pattern_zeroes_whole_heads_and_neurons_and_shrinks_exactly():
    from pruneofa.core.support import ARCHITECTURES
    from pruneofa.exporter.shrink import shrink_model

    model = _model().eval()
    config = PruningConfig(pattern="structured")
    apply_pruning(model, config)
    update_masks(model, 0.5, config)
    remove_pruning(model)
    layer = model.bert.encoder.layer[0]
    q = layer.attention.self.query.weight.reshape(4, 8, -1)
    assert int((~q.any(dim=(1, 2))).sum()) == 2  # 2 of 4 heads gone
    assert int((~layer.intermediate.dense.weight.any(dim=1)).sum()) == 32  # 32 of 64 neurons gone
    batch = {k: v for k, v in _batch().items() if k != "labels"}
    with torch.no_grad():
        expected = model(**batch).logits
    report = shrink_model(model, ARCHITECTURES["bert"])
    assert [(r.heads_after, r.neurons_after) for r in report.layers] == [(2, 32), (2, 32)]
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, expected, atol=1e-5, rtol=1e-5)


def test_lock_keeps_an_existing_pattern_through_training():
    model = _model()
    with torch.no_grad():
        w = model.bert.encoder.layer[0].output.dense.weight
        w[w.abs() < w.abs().median()] = 0.0
    zero_before = model.bert.encoder.layer[0].output.dense.weight == 0
    lock_sparsity(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-2, weight_decay=0.1)
    for step in range(3):
        model(**_batch(step)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    remove_pruning(model)
    zero_after = model.bert.encoder.layer[0].output.dense.weight == 0
    assert torch.equal(zero_before, zero_after)


# --- distillation -------------------------------------------------------------------------------------


def test_kd_divergence_matches_a_hand_computed_value():
    student = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0]])
    # T = 2: p_t = softmax([0, .5]), p_s = softmax([.5, 0]); KL(p_t || p_s) = sum p_t (log p_t - log p_s)
    pt1 = 1 / (1 + math.exp(-0.5))  # p_t[1] = p_s[0]
    kl = pt1 * (math.log(pt1) - math.log(1 - pt1)) + (1 - pt1) * (math.log(1 - pt1) - math.log(pt1))
    assert float(kd_divergence(student, teacher, 2.0)) == pytest.approx(4 * kl, rel=1e-6)
    assert float(kd_divergence(teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-7)


def test_masked_lm_distillation_ignores_padding():
    student, teacher = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = teacher.clone()
    changed[0, 3:] += 100.0  # padding positions: must not matter
    a = kd_loss("masked-lm", {"logits": student}, {"logits": teacher}, 2.0, mask)
    b = kd_loss("masked-lm", {"logits": student}, {"logits": changed}, 2.0, mask)
    assert float(a) == pytest.approx(float(b))
    per_token = kd_divergence(student[mask.bool()], teacher[mask.bool()], 2.0)
    assert float(a) == pytest.approx(float(per_token), rel=1e-6)


def test_qa_and_regression_distillation_and_combination():
    s = {"start_logits": torch.randn(3, 9), "end_logits": torch.randn(3, 9)}
    t = {"start_logits": torch.randn(3, 9), "end_logits": torch.randn(3, 9)}
    expected = 0.5 * (
        kd_divergence(s["start_logits"], t["start_logits"], 2.0)
        + kd_divergence(s["end_logits"], t["end_logits"], 2.0)
    )
    assert float(kd_loss("question-answering", s, t, 2.0)) == pytest.approx(float(expected))
    reg = kd_loss(
        "regression", {"logits": torch.tensor([[1.0], [3.0]])}, {"logits": torch.tensor([[2.0], [3.0]])}, 2.0
    )
    assert float(reg) == pytest.approx(0.5)  # ((1-2)^2 + 0) / 2
    config = DistillationConfig()
    assert float(combined_loss(torch.tensor(2.0), torch.tensor(4.0), config)) == pytest.approx(3.0)
    assert float(F.mse_loss(torch.zeros(1), torch.zeros(1))) == 0.0


# --- recipes ------------------------------------------------------------------------------------------


def test_builtin_recipes_scale_with_the_run_length():
    recipe = load_recipe("pruneofa-90")
    short, long = recipe.schedule.at(200), recipe.schedule.at(100_000)
    assert (short.end_step, short.freeze_step, short.frequency) == (100, 160, 2)
    assert (long.end_step, long.freeze_step, long.frequency) == (50_000, 80_000, 1_000)
    assert load_recipe("pruneofa-85").schedule.final_sparsity == 0.85
    assert load_recipe("structured-50").pruning.pattern == "structured"


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\nschedule: {initial_sparsity: 0.9, final_sparsity: 0.5}\n", "below initial_sparsity"),
        ("name: x\nschedule: {final_sparsity: 0.9, begin: 0.6, end: 0.2}\n", "before begin_step"),
        ("name: x\npruning: {pattern: diagonal}\nschedule: {final_sparsity: 0.9}\n", "pruning.pattern"),
        ("name: x\nschedule: {final_sparsity: 1.0}\n", "schedule.final_sparsity"),
        ("name: x\nschedule: [1, 2\n", "not valid YAML"),
        ("- just a list\n", "must be a mapping"),
        ("name: x\nsurprise: 1\n", "surprise"),
    ],
)
def test_bad_recipes_are_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_recipe(path)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="neither a file nor a built-in"):
        load_recipe("no-such-recipe")


def test_recipe_with_rewinding_runs_in_the_trainer(tmp_path, make_model):
    from pruneofa.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("the movie was a delight from start to finish\n" * 200)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: rewind\nschedule: {final_sparsity: 0.5, end: 0.5, frequency: 0.25, freeze: null}\n"
        "optimizer: {learning_rate: 0.001, lr_rewinding: true}\n"
    )
    model = str(make_model("bert", "fill-mask"))
    argv = [
        "prune",
        model,
        "--teacher",
        model,
        "--corpus",
        str(corpus),
        "--recipe",
        str(recipe),
        "--steps",
        "8",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
        "--logging-steps",
        "1",
        "--output",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 0
    from pruneofa.core.manifest import read_manifest

    curve = read_manifest(tmp_path / "o").training.loss_curve
    rates = [entry["learning_rate"] for entry in curve]
    assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) != len(rates) - 1
    assert sum(1 for a, b in zip(rates, rates[1:], strict=False) if b > a) >= 1  # it went up again: a rewind


def test_hidden_state_distillation_adds_its_term():
    from pruneofa.training.trainer import DistillationTrainer

    student, teacher = _model(seed=0).eval(), _model(seed=1).eval()  # eval: no dropout noise
    batch = _batch()

    def loss_with(weight: float) -> float:
        trainer = DistillationTrainer.__new__(DistillationTrainer)  # compute_loss only: no Trainer set-up
        trainer.teacher, trainer.kind, trainer._terms = teacher, "classification", {}
        trainer.distillation = DistillationConfig(hidden_states=weight)
        return float(trainer.compute_loss(student, batch))

    plain, with_hidden = loss_with(0.0), loss_with(1.0)
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True).hidden_states
        t = teacher(
            **{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True
        ).hidden_states
    expected = sum(float(F.mse_loss(a, b)) for a, b in zip(s, t, strict=True)) / len(s)
    assert with_hidden - plain == pytest.approx(expected, rel=1e-4)


def test_hidden_state_loss_averages_over_non_padding_positions_with_or_without_padding():
    """Over the positions the mask keeps: with padding, exactly the gathered rows' MSE; without, the plain
    MSE (the path that skips the gather), the same value as no mask at all."""
    from pruneofa.training.distill import hidden_state_loss

    generator = torch.Generator().manual_seed(0)
    student = tuple(torch.randn(3, 5, 8, generator=generator) for _ in range(3))
    teacher = tuple(torch.randn(3, 5, 8, generator=generator) for _ in range(3))
    padded = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    keep = padded.bool()
    expected = sum(F.mse_loss(s[keep], t[keep]) for s, t in zip(student, teacher, strict=True)) / 3
    assert torch.equal(hidden_state_loss(student, teacher, padded), expected)
    full = torch.ones(3, 5, dtype=torch.long)
    gathered = (
        sum(F.mse_loss(s[full.bool()], t[full.bool()]) for s, t in zip(student, teacher, strict=True)) / 3
    )
    assert torch.equal(
        hidden_state_loss(student, teacher, full), gathered
    )  # bit for bit: same rows, same order
    assert torch.equal(hidden_state_loss(student, teacher, full), hidden_state_loss(student, teacher, None))
    assert hidden_state_loss(student, teacher, full) != hidden_state_loss(student, teacher, padded)
