"""How good a language model each pruned student still is, against its masked-LM teacher.

The study's pruning runs log only their training loss (0.5·MLM + 0.5·T²·KL + pooler MSE, or the
variant's terms), which neither separates the MLM loss nor compares across variants. This scores every
model folder on the same fixed sample of the corpus mix, with the same masks:

  masked-LM loss     cross-entropy at the masked tokens (15 %, masks seeded by --seed and the batch's
                     token ids: the same for every model), and its perplexity
  KL to teacher      KL(p_teacher ‖ p_student) at T = 1 over every non-padding token (what the
                     distillation term drives down), the unmasked input
  top-1 agreement    share of non-padding tokens where the student's most likely token is the teacher's
  sparsity           share of zeros in the encoder and pooler Linear weights (the pruning scope)

The sample is ``--blocks`` blocks of ``--seq-len`` tokens from a shuffle of the mix with ``--seed``
(``training.datasets.mlm_blocks``, the loader the stages use). There is no held-out text in
../shared/data/corpus: a 300-step pruning run at batch 32 sees about a quarter of the mix once, so
about a quarter of the sample was seen in training, alike for every model.

Run:  .venv/bin/python benchmarks/mlm_quality.py --teacher bench-out/study2/teacher-mlm \
          bench-out/study2/pruned-0 bench-out/study2/pruned-90 …
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from pruneofa.training.distill import kd_divergence

DATA = Path("../shared/data")
CORPUS = ("wikitext-2-raw/wiki.test.raw", "gutenberg", "tinyshakespeare")  # the study's mix


@dataclass
class Score:
    name: str
    sparsity: float
    mlm_loss: float
    kl: float
    agreement: float

    def row(self) -> str:
        return (
            f"| {self.name} | {self.sparsity:.1%} | {self.mlm_loss:.3f} | {math.exp(self.mlm_loss):.1f} | "
            f"{self.kl:.3f} | {self.agreement:.1%} |"
        )


def load(folder: str):
    from pruneofa.training.engine import load_model

    _, model, _ = load_model(
        folder, "AutoModelForMaskedLM", allow_new_head=False, what="model", keep_pooler=True
    )
    return model.eval()


def scope_sparsity(model: torch.nn.Module) -> float:
    """Zeros over all weights the built-in recipes prune (encoder and pooler Linears)."""
    from pruneofa.training.masks import zero_patterns

    patterns = list(zero_patterns(model).values())
    return sum(int(p.sum()) for p in patterns) / max(1, sum(p.numel() for p in patterns))


@torch.no_grad()
def logits_of(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()


class Tally:
    """One model's sums over the sample."""

    def __init__(self, name: str, model) -> None:
        self.name, self.model = name, model
        self.nll = self.kl = self.agree = 0.0
        self.masked = self.tokens = 0

    @torch.no_grad()
    def add(self, batch: dict[str, torch.Tensor], teacher: torch.Tensor) -> None:
        """``teacher``: the teacher's logits at the batch's non-padding tokens (clean input)."""
        keep = batch["attention_mask"].bool()
        # the masked input for the MLM loss; the clean input for the comparison with the teacher
        masked_logits = self.model(
            input_ids=batch["masked_ids"], attention_mask=batch["attention_mask"]
        ).logits
        where = batch["labels"] != -100
        self.nll += float(
            F.cross_entropy(masked_logits[where].float(), batch["labels"][where], reduction="sum")
        )
        self.masked += int(where.sum())
        student = logits_of(self.model, batch)[keep]
        self.kl += float(kd_divergence(student, teacher, temperature=1.0)) * len(student)  # mean → sum
        self.agree += float((student.argmax(-1) == teacher.argmax(-1)).sum())
        self.tokens += int(keep.sum())

    def score(self) -> Score:
        return Score(
            self.name,
            scope_sparsity(self.model),
            self.nll / max(1, self.masked),
            self.kl / max(1, self.tokens),
            self.agree / max(1, self.tokens),
        )


def batches_of(
    corpus: list[str], tokenizer, blocks: int, seq_len: int, batch_size: int, seed: int
) -> list[dict]:
    from pruneofa.training.config import TrainConfig
    from pruneofa.training.datasets import mlm_blocks
    from pruneofa.training.engine import mlm_collator

    sample = mlm_blocks(corpus, tokenizer, seq_len=seq_len, limit=blocks, seed=seed)
    collate = mlm_collator(tokenizer, TrainConfig(seed=seed))
    out = []
    for start in range(0, len(sample), batch_size):
        items = [sample[i] for i in range(start, min(start + batch_size, len(sample)))]
        clean = tokenizer.pad([{"input_ids": item["input_ids"]} for item in items], return_tensors="pt")
        masked = collate([{"input_ids": item["input_ids"]} for item in items])
        out.append(
            {
                "input_ids": clean["input_ids"],
                "attention_mask": clean["attention_mask"],
                "masked_ids": masked["input_ids"],
                "labels": masked["labels"],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders (masked-LM checkpoints: prune outputs)")
    parser.add_argument("--teacher", required=True, help="the masked-LM teacher the students distilled from")
    parser.add_argument("--corpus", default=",".join(str(DATA / "corpus" / c) for c in CORPUS))
    parser.add_argument("--blocks", type=int, default=1024, help="blocks in the sample (default 1024)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1234, help="shuffle and masks (default 1234)")
    args = parser.parse_args(argv)
    if not 1 <= args.blocks <= 100_000:
        parser.error("--blocks must be between 1 and 100000")
    missing = [m for m in [args.teacher, *args.models] if not Path(m).is_dir()]
    if missing:
        parser.error(f"not a model folder: {missing[0]} (pass the output folders of pruneofa teacher/prune)")
    from transformers import AutoTokenizer

    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher, trust_remote_code=False)
    corpus = [c for c in args.corpus.split(",") if c]
    batches = batches_of(corpus, tokenizer, args.blocks, args.seq_len, args.batch_size, args.seed)
    teacher = load(args.teacher)
    tallies = [Tally(f"teacher ({Path(args.teacher).name})", teacher)]
    tallies += [Tally(Path(folder).name, load(folder)) for folder in args.models]
    for i, batch in enumerate(batches):  # batch-major: the teacher's logits are computed once, never kept
        print(f"batch {i + 1}/{len(batches)}", file=sys.stderr, end="\r", flush=True)
        teacher_logits = logits_of(teacher, batch)[batch["attention_mask"].bool()]
        for tally in tallies:
            tally.add(batch, teacher_logits)
    print(file=sys.stderr)
    rows = [tally.score() for tally in tallies]
    blocks = sum(len(b["input_ids"]) for b in batches)
    print(f"{blocks} blocks of {args.seq_len} tokens, seed {args.seed}; corpus {args.corpus}\n")
    print("| model | sparsity (encoder + pooler Linears) | masked-LM loss | perplexity | KL to teacher (T = 1) | "
          "top-1 agreement |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print("\n".join(row.row() for row in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
