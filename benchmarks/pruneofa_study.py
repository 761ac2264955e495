"""The whole Prune-Once-for-All method at small scale on this CPU, resumable stage by stage.

MiniLM default → masked-LM teacher on WikiText-2 → pruning to 85 % and 90 % (and a structured run)
with distillation → sparse transfer on SST-2 and MRPC with dense MiniLM task teachers → dev metrics,
next to the dense fine-tuned MiniLM trained with the same budget (the task teachers themselves).

Every stage is one `pruneofa` command. A stage whose output folder already has a pruneofa.json is
skipped; an interrupted stage resumes from its Trainer checkpoint when the script is run again. So:

    .venv/bin/python benchmarks/pruneofa_study.py --out bench-out/study            # run / continue
    .venv/bin/python benchmarks/pruneofa_study.py --out bench-out/study --report   # table of what is done
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pruneofa.core.manifest import read_manifest

DATA = Path("../shared/data")
TASKS = ("sst2", "mrpc")  # the downstream tasks of the study


def stages(out: Path, args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    corpus = str(args.data / "corpus" / "wikitext-2-raw" / "wiki.test.raw")
    sst2, mrpc = str(args.data / "glue" / "SST-2"), str(args.data / "glue" / "MRPC")
    common = ["--seq-len", "64", "--batch-size", "32", "--save-steps", str(args.save_steps)]
    common += ["--logging-steps", "10"]
    limit = ["--train-limit", str(args.train_limit)] if args.train_limit else []
    task_budget = ["--steps", str(args.finetune_steps), *limit, "--learning-rate", "5e-5"]
    model = [str(args.model)] if args.model else []
    plan = [
        ("teacher-mlm", ["teacher", *model, "--corpus", corpus, "--steps", str(args.teacher_steps), *common]),
        ("teacher-sst2", ["teacher", *model, "--task", "sst2", "--data", sst2, *task_budget, *common]),
    ]
    for name, recipe in (
        ("pruned-90", "pruneofa-90"),
        ("pruned-85", "pruneofa-85"),
        ("pruned-structured", "structured-50"),
    ):
        plan.append(
            (
                name,
                [
                    "prune",
                    str(out / "teacher-mlm"),
                    "--teacher",
                    str(out / "teacher-mlm"),
                    "--corpus",
                    corpus,
                    "--recipe",
                    recipe,
                    "--steps",
                    str(args.prune_steps),
                    *common,
                ],
            )
        )
        plan.append(
            (
                f"{name}-sst2",
                [
                    "finetune",
                    str(out / name),
                    "--task",
                    "sst2",
                    "--data",
                    sst2,
                    "--teacher",
                    str(out / "teacher-sst2"),
                    *task_budget,
                    *common,
                ],
            )
        )
    plan.append(
        ("teacher-mrpc", ["teacher", *model, "--task", "mrpc", "--data", mrpc, *task_budget, *common])
    )
    for name in ("pruned-90", "pruned-85", "pruned-structured"):
        plan.append(
            (
                f"{name}-mrpc",
                [
                    "finetune",
                    str(out / name),
                    "--task",
                    "mrpc",
                    "--data",
                    mrpc,
                    "--teacher",
                    str(out / "teacher-mrpc"),
                    *task_budget,
                    *common,
                ],
            )
        )
    left_out = tuple(f"-{task}" for task in TASKS if task not in args.tasks)
    return [
        (name, [*argv, "--output", str(out / name)]) for name, argv in plan if not name.endswith(left_out)
    ]


def report(out: Path) -> str:
    rows = ["| stage | command | steps | s/step | result |", "|---|---|---|---|---|"]
    for folder in sorted(p for p in out.iterdir() if (p / "pruneofa.json").is_file()):
        m = read_manifest(folder)
        t = m.training
        sparsity = t.layer_sparsity
        mean = sum(sparsity.values()) / len(sparsity) if sparsity else 0.0
        result = ", ".join(f"{k} {v:.2f}" for k, v in m.metrics.items() if k != "mlm_head_added")
        if sparsity:
            result = (result + "; " if result else "") + f"Linear sparsity {mean:.2%}"
        if t.loss_curve:
            result = (
                result + "; " if result else ""
            ) + f"final loss {t.loss_curve[-1].get('loss', float('nan')):.3f}"
        rows.append(
            f"| {folder.name} | `{' '.join(m.command)}` | {t.steps} | {t.step_time_s:.2f} | {result} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/study"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--prune-steps", type=int, default=200)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument(
        "--model",
        type=Path,
        help="dense starting model for the teacher stages (default: the embedded MiniLM)",
    )
    parser.add_argument(
        "--train-limit", type=int, default=8000, help="task training examples used (0: all of them)"
    )
    parser.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (resume points)")
    parser.add_argument("--tasks", default="sst2,mrpc", help="comma-separated downstream tasks (sst2, mrpc)")
    parser.add_argument(
        "--deadline-s",
        type=float,
        help="start no new stage after this many seconds (for a time-boxed machine); the report still prints",
    )
    parser.add_argument("--report", action="store_true", help="only print the table of finished stages")
    args = parser.parse_args()
    args.tasks = {t.strip() for t in args.tasks.split(",") if t.strip()}
    if not args.tasks <= set(TASKS):
        parser.error(f"--tasks: unknown task(s) {sorted(args.tasks - set(TASKS))}; use sst2 and/or mrpc")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        script = Path(sys.executable).with_name("pruneofa")
        pruneofa = [str(script)] if script.is_file() else [sys.executable, "-m", "pruneofa"]
        began = time.perf_counter()
        for name, argv in stages(args.out, args):
            if (args.out / name / "pruneofa.json").is_file():
                print(f"[study] {name}: done, skipped", flush=True)
                continue
            if args.deadline_s is not None and time.perf_counter() - began > args.deadline_s:
                print(f"[study] {name}: not started, past the {args.deadline_s:.0f} s deadline", flush=True)
                break
            print(f"[study] {name}: pruneofa {' '.join(argv)}", flush=True)
            started = time.perf_counter()
            code = subprocess.call([*pruneofa, *argv])
            print(f"[study] {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
            if code != 0:
                return code
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
