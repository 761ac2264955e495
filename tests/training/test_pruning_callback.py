"""Gradual pruning inside transformers.Trainer: the final sparsity is exact, and a run interrupted and
resumed from its checkpoint ends with the same masks as an uninterrupted run with the same seed."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import tiny_config
from transformers import Trainer, TrainerCallback, TrainingArguments

from pruneofa.training.callbacks import PruningCallback
from pruneofa.training.masks import PruningConfig, apply_pruning, pruned_modules, sparsity_by_module
from pruneofa.training.schedule import CubicSchedule

STEPS = 24


class _RandomSequences(torch.utils.data.Dataset):
    def __init__(self, n: int = 96) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 120, (n, 10), generator=g)
        self.labels = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(10, dtype=torch.long),
            "labels": self.labels[i],
        }


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True


def _trainer(output_dir, *extra_callbacks, schedule=None, steps=STEPS) -> Trainer:
    transformers.set_seed(0)
    model = transformers.BertForSequenceClassification(tiny_config("bert", 120))
    config = PruningConfig()
    apply_pruning(model, config)
    schedule = schedule or CubicSchedule(
        final_sparsity=0.8, begin_step=0, end_step=12, frequency=4, freeze_step=20
    )
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        weight_decay=0.1,
        save_steps=10,
        save_strategy="steps",
        logging_steps=5,
        report_to=[],
        use_cpu=True,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=_RandomSequences(),
        callbacks=[PruningCallback(config, schedule), *extra_callbacks],
    )


@pytest.mark.parametrize(
    "schedule",
    [
        # pruneofa-90 over 3 steps (a 1 % rehearsal of 300): end and freeze both at step 2
        CubicSchedule(final_sparsity=0.8, end_step=2, frequency=1, freeze_step=2),
        # end and freeze on the run's last step, which never begins: on_train_end makes it exact
        CubicSchedule(final_sparsity=0.8, end_step=3, frequency=1, freeze_step=3),
    ],
    ids=["end-is-freeze", "end-is-the-last-step"],
)
def test_a_three_step_run_ends_at_the_final_sparsity(tmp_path, schedule):
    trainer = _trainer(tmp_path / "run", schedule=schedule, steps=3)
    trainer.train()
    for name, value in sparsity_by_module(trainer.model).items():
        assert value == pytest.approx(0.8, abs=1 / 512), name


def test_final_sparsity_is_exact_and_logged(tmp_path):
    trainer = _trainer(tmp_path / "run")
    trainer.train()
    for name, value in sparsity_by_module(trainer.model).items():
        assert value == pytest.approx(0.8, abs=1 / 512), name
    logged = [entry for entry in trainer.state.log_history if "sparsity" in entry]
    assert logged and logged[-1]["target_sparsity"] == 0.8


def test_resume_gives_the_same_masks_as_an_uninterrupted_run(tmp_path):
    straight = _trainer(tmp_path / "straight")
    straight.train()
    expected = {m.name: m.mask.clone() for m in pruned_modules(straight.model)}

    interrupted = _trainer(tmp_path / "resumed", _StopAt(10))
    interrupted.train()
    assert interrupted.state.global_step == 10
    resumed = _trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-10"))
    assert resumed.state.global_step == STEPS
    for module in pruned_modules(resumed.model):
        assert torch.equal(module.mask, expected[module.name]), module.name
