"""Seconds per training step on this CPU: plain fine-tuning vs the method's steps, same model and batch.

Steps measured on all-MiniLM-L6-v2 (batch 32 × 64 tokens, AdamW), medians of --steps after 2 warm-ups:
  finetune          sequence classification, dense (the baseline)
  finetune+kd       masks locked at 90 % + distillation from a dense teacher of the same size
                    (what `pruneofa finetune` does)
  mlm               masked-LM training of the dense model (what `pruneofa teacher --corpus` does)
  prune+kd          masked-LM with masks at 90 % + distillation from the MLM teacher over all
                    non-padding tokens (what `pruneofa prune` does between mask updates)
Run:  .venv/bin/python benchmarks/step_times.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from pruneofa.core.modelio import default_model_path
from pruneofa.training.distill import DistillationConfig, combined_loss, kd_loss
from pruneofa.training.masks import PruningConfig, apply_pruning, update_masks


def measure(student, teacher, batch, kind: str, steps: int) -> float:
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
    config = DistillationConfig()
    times = []
    for step in range(steps + 2):
        started = time.perf_counter()
        out = student(**batch)
        loss = out.loss
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(**{k: v for k, v in batch.items() if k != "labels"})
            loss = combined_loss(loss, kd_loss(kind, out, t_out, 2.0, batch["attention_mask"]), config)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= 2:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    path = default_model_path()
    ids = torch.randint(1000, 29000, (args.batch_size, args.seq_len))
    mask = torch.ones_like(ids)
    cls_batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (args.batch_size,))}
    mlm_labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))
    mlm_batch = {"input_ids": ids, "attention_mask": mask, "labels": mlm_labels}

    def classifier():
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()

    def masked_lm():
        return AutoModelForMaskedLM.from_pretrained(path).train()

    def sparse(model):
        config = PruningConfig()
        apply_pruning(model, config)
        update_masks(model, 0.9, config)
        return model

    results = {
        "finetune": measure(classifier(), None, cls_batch, "classification", args.steps),
        "finetune+kd": measure(
            sparse(classifier()), classifier().eval(), cls_batch, "classification", args.steps
        ),
        "mlm": measure(masked_lm(), None, mlm_batch, "masked-lm", args.steps),
        "prune+kd": measure(sparse(masked_lm()), masked_lm().eval(), mlm_batch, "masked-lm", args.steps),
    }
    base = results["finetune"]
    print(
        f"| step (batch {args.batch_size} × {args.seq_len} tokens, {torch.get_num_threads()} threads) | s/step | vs fine-tuning |"
    )
    print("|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
