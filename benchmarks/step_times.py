"""Seconds per training step on this CPU: plain fine-tuning vs the method's steps, same model and batch.

Every step runs the training code's own loss (``DistillationTrainer.compute_loss``) on all-MiniLM-L6-v2
(batch 32 × 64 tokens, AdamW), in one process, medians of --steps steps per row taken round-robin after
2 warm-ups (one step of each row in turn, so other work on the cores slows every row alike):

  finetune              sequence classification, dense (the baseline)
  finetune+kd           masks locked at 90 % + distillation from a dense teacher of the same size
                        (what `pruneofa finetune` does)
  mlm                   masked-LM training of the dense model (`pruneofa teacher --corpus`, second phase)
  mlm head warm-up      the same with only the new MLM head learning (its first phase, encoder frozen)
  prune+kd …            masked-LM with masks at 90 % + distillation from the MLM teacher (what
                        `pruneofa prune` does between mask updates), pooler distillation included:
      full vocabulary       the KL over all 30,522 tokens at every non-padding token (the paper)
      top-k K               the KL over the teacher's K most likely tokens (distillation.top_k: K)
      hidden states         hidden-state MSE alone (alpha_kd: 0, hidden_states: 1)
      top-k 64 + hidden     both
      model's logits        the full-vocabulary step as the previous code ran it (the model forms
                            logits at every token, MLM loss included), for comparison
  …, bf16 teacher       the same step with the teacher's forward in bf16 autocast
                        (distillation.teacher_precision: bfloat16); only where this CPU runs bf16
                        natively (AVX512_BF16/AMX), else the rows are left out

The load average before and after is printed: the figures mean little when other work shares the cores.
Run:  .venv/bin/python benchmarks/step_times.py [--only "finetune,top-k 64"]   (rows whose name contains
one of the comma-separated strings; the finetune baseline is always measured)
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from pruneofa.core.modelio import default_model_path
from pruneofa.training.distill import DistillationConfig, combined_loss, kd_loss
from pruneofa.training.engine import carry_pooler
from pruneofa.training.masks import PruningConfig, apply_pruning, update_masks
from pruneofa.training.trainer import DistillationTrainer, native_bf16

PAPER = dict(alpha_task=0.5, alpha_kd=0.5, temperature=2.0, pooler=1.0)  # the pruneofa-90 recipe


def loss_of(teacher, kind: str, **distillation):
    """The training code's loss for one batch (``DistillationTrainer.compute_loss``, no Trainer set-up)."""
    trainer = DistillationTrainer.__new__(DistillationTrainer)
    trainer.teacher, trainer.kind, trainer._terms = teacher, kind, {}
    trainer.distillation = DistillationConfig(**distillation)
    if teacher is not None:
        teacher.eval().requires_grad_(False)
    return lambda model, batch: trainer.compute_loss(model, batch)


def previous_loss(teacher):
    """The previous code's prune+kd loss: the model's own logits at every token, then the KL."""
    config = DistillationConfig(**PAPER)

    def loss(model, batch):
        out = model(**batch)
        with torch.no_grad():
            t_out = teacher(**{k: v for k, v in batch.items() if k != "labels"})
        return combined_loss(out.loss, kd_loss("masked-lm", out, t_out, 2.0, batch["attention_mask"]), config)

    return loss


def measure(runs: dict, steps: int) -> dict[str, float]:
    """Median seconds per step of every run, taken round-robin (one step of each in turn, after 2 warm-up
    steps each), so that other work sharing the cores slows every row alike rather than a few."""
    optimizers = {
        name: torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
        for name, (student, _, _) in runs.items()
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(steps + 2):
        for name, (student, loss, batch) in runs.items():
            started = time.perf_counter()
            loss(student, batch).backward()
            optimizers[name].step()
            optimizers[name].zero_grad()
            if step >= 2:
                times[name].append(time.perf_counter() - started)
        print(f"round {step + 1}/{steps + 2} done", file=sys.stderr, flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--top-k", default="32,64,128", help="comma-separated k values to measure")
    parser.add_argument("--only", default="", help="comma-separated substrings: measure only matching rows")
    args = parser.parse_args()
    load_before = os.getloadavg()
    transformers.logging.set_verbosity_error()  # no load reports for the heads added on purpose
    torch.manual_seed(0)
    path = str(default_model_path())
    ids = torch.randint(1000, 29000, (args.batch_size, args.seq_len))
    mask = torch.ones_like(ids)
    cls_batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (args.batch_size,))}
    mlm_labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))
    mlm_batch = {"input_ids": ids, "attention_mask": mask, "labels": mlm_labels}

    def classifier():
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()

    def masked_lm():
        model = AutoModelForMaskedLM.from_pretrained(path).train()
        carry_pooler(model, path)  # as `pruneofa teacher/prune` load it
        return model

    def sparse(model):
        config = PruningConfig()
        apply_pruning(model, config)
        update_masks(model, 0.9, config)
        return model

    def head_only(model):
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("cls."))
        return model

    @functools.cache
    def teacher():
        """The MLM teacher, built once and only when a row needs it."""
        return masked_lm().eval()

    hidden = {**PAPER, "alpha_kd": 0.0, "hidden_states": 1.0}
    ks = [int(k) for k in args.top_k.split(",") if k.strip()]
    # name → a function building the row (student, loss, batch): only the measured rows are built, so a
    # run with --only holds no models it does not time (they changed the timed rows' figures)
    rows = {
        "finetune": lambda: (classifier(), loss_of(None, "classification"), cls_batch),
        "finetune+kd": lambda: (sparse(classifier()), loss_of(classifier(), "classification"), cls_batch),
        "mlm": lambda: (masked_lm(), loss_of(None, "masked-lm"), mlm_batch),
        "mlm head warm-up": lambda: (head_only(masked_lm()), loss_of(None, "masked-lm"), mlm_batch),
        "prune+kd full vocabulary": lambda: (
            sparse(masked_lm()),
            loss_of(teacher(), "masked-lm", **PAPER),
            mlm_batch,
        ),
        **{
            f"prune+kd top-k {k}": lambda k=k: (
                sparse(masked_lm()),
                loss_of(teacher(), "masked-lm", **PAPER, top_k=k),
                mlm_batch,
            )
            for k in ks
        },
        "prune+kd hidden states": lambda: (
            sparse(masked_lm()),
            loss_of(teacher(), "masked-lm", **hidden),
            mlm_batch,
        ),
        "prune+kd top-k 64 + hidden": lambda: (
            sparse(masked_lm()),
            loss_of(teacher(), "masked-lm", **PAPER, top_k=64, hidden_states=1.0),
            mlm_batch,
        ),
        "prune+kd model's logits (previous code)": lambda: (
            sparse(masked_lm()),
            previous_loss(teacher()),
            mlm_batch,
        ),
    }
    if native_bf16(torch.device("cpu")):
        bf16 = {"teacher_precision": "bfloat16"}
        rows |= {
            "finetune+kd, bf16 teacher": lambda: (
                sparse(classifier()),
                loss_of(classifier(), "classification", **bf16),
                cls_batch,
            ),
            "prune+kd full vocabulary, bf16 teacher": lambda: (
                sparse(masked_lm()),
                loss_of(teacher(), "masked-lm", **PAPER, **bf16),
                mlm_batch,
            ),
            "prune+kd top-k 64, bf16 teacher": lambda: (
                sparse(masked_lm()),
                loss_of(teacher(), "masked-lm", **PAPER, top_k=64, **bf16),
                mlm_batch,
            ),
            "prune+kd hidden states, bf16 teacher": lambda: (
                sparse(masked_lm()),
                loss_of(teacher(), "masked-lm", **hidden, **bf16),
                mlm_batch,
            ),
        }
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    runs = {
        name: build()
        for name, build in rows.items()
        if not wanted or name == "finetune" or any(w in name for w in wanted)
    }
    results = measure(runs, args.steps)
    load_after = os.getloadavg()
    base = results["finetune"]
    print(
        f"| step (batch {args.batch_size} × {args.seq_len} tokens, {torch.get_num_threads()} threads) "
        "| s/step | vs fine-tuning |"
    )
    print("|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x |")
    print(
        f"\nload average (1/5/15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {' '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
