"""A pruning run's logs against the paper's formulas: sparsity per step, learning rate with rewinding,
and the distillation loss's share of the loss at the start and the end of the run.

Reads the logged series of one pruning run (every ``--logging-steps``): from a budget-sweep record
(``--record STAGE``, the committed results file; the series survives losing the run's folder), from a
run's output folder (``pruneofa.json``'s loss curve and ``recipe.yaml``), or from a Trainer checkpoint's
``trainer_state.json`` (``--recipe`` and ``--steps`` then say what ran). The reference formulas are written
out here from their sources, not taken from ``training/schedule.py``:

  sparsity  Zhu & Gupta (2017): s(t) = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³ at the pruning steps
            t = t0, t0 + Δt, …, t0 + n·Δt, constant in between; masks are recomputed at the start of an
            optimizer step, so after k steps the last update is the last grid step ≤ k − 1
  rate      Intel's ``get_linear_rewinding_schedule_with_warmup`` (model_compression_research/api_utils.py):
            warm-up t/W; inside the ramp the rate decays from the start of each pruning interval,
            (T − R − t0 − (t − t0) mod Δt)/(T − R − W) with R = t_end − t0; before it (T − R − t)/(T − R − W),
            after it (T − t)/(T − R − W), t counted from 0; after k steps the Trainer logs the rate
            the k-th step used (t = k − 1); pruneofa caps the factor at 1 (the reference reaches 1.02
            at its warm-up's end; docs/training.md)
  share     of the weighted loss α_task·MLM + α_kd·KL + w_hidden·hidden MSE + w_pooler·pooler MSE, the
            part that distils: (α_kd·KL + w_hidden·hidden + w_pooler·pooler) / total, from the logged
            unweighted terms (``mlm_loss``, ``kd_loss``, ``hidden_loss``, ``pooler_loss``)

    .venv/bin/python benchmarks/pruning_logs.py --record pruned-90-hkd-t400-p300 --out docs/figures/p300.png
    .venv/bin/python benchmarks/pruning_logs.py runs/bert-90 --out /tmp/logs.png
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPARSITY_TOLERANCE = 2e-3  # logged sparsity is the mean over layers of whole-weight (or block) counts
LR_TOLERANCE = 1e-3  # relative to the peak rate


@dataclass
class Run:
    name: str
    steps: int
    learning_rate: float
    recipe: Any  # pruneofa.training.recipe.Recipe
    log: list[dict[str, float]]


def zhu_gupta(step: int, total: int, schedule: Any) -> float:
    """The sparsity in force after ``step`` optimizer steps (the last update came before step ``step``)."""
    t0, t_end = round(schedule.begin * total), round(schedule.end * total)
    interval = max(1, round(schedule.frequency * total))
    last = step - 1
    if last < t0:
        return schedule.initial_sparsity
    if last >= t_end:
        return schedule.final_sparsity
    progress = ((last - t0) // interval * interval) / (t_end - t0)
    return (
        schedule.final_sparsity + (schedule.initial_sparsity - schedule.final_sparsity) * (1 - progress) ** 3
    )


def rewinding_rate(step: int, total: int, schedule: Any, warmup_ratio: float) -> float:
    """The reference's learning-rate factor of optimizer step ``step``, capped at 1 as pruneofa does."""
    warmup = int(warmup_ratio * total)
    t0, t_end = round(schedule.begin * total), round(schedule.end * total)
    interval = max(1, round(schedule.frequency * total))
    ramp = t_end - t0
    denominator = max(1, total - ramp - warmup)
    if step < warmup:
        return step / max(1, warmup)
    if t0 <= step < t_end:
        rewound = (step - t0) // interval * interval
        value = (total - ramp - step + rewound) / denominator
    else:
        value = (total - (ramp if step < t0 else 0) - step) / denominator
    return min(1.0, max(0.0, value))


def distillation_share(entry: dict[str, float], distillation: Any) -> float | None:
    terms = {
        "mlm_loss": distillation.alpha_task,
        "kd_loss": distillation.alpha_kd,
        "hidden_loss": distillation.hidden_states,
        "pooler_loss": distillation.pooler,
    }
    weighted = {k: w * entry[k] for k, w in terms.items() if k in entry and w > 0}
    if "mlm_loss" not in weighted or len(weighted) < 2:
        return None
    total = sum(weighted.values())
    return (total - weighted["mlm_loss"]) / total if total else None


def check(run: Run) -> tuple[list[str], dict[str, list[tuple[int, float, float]]]]:
    """Lines of the report, and per series the (step, logged, reference) points."""
    schedule, optimizer = run.recipe.schedule, run.recipe.optimizer
    series: dict[str, list[tuple[int, float, float]]] = {"sparsity": [], "learning_rate": []}
    for entry in run.log:
        step = int(entry.get("step", 0))
        if "sparsity" in entry:
            series["sparsity"].append((step, entry["sparsity"], zhu_gupta(step, run.steps, schedule)))
        if "learning_rate" in entry and optimizer.lr_rewinding:
            reference = run.learning_rate * rewinding_rate(
                step - 1, run.steps, schedule, optimizer.warmup_ratio
            )
            series["learning_rate"].append((step, entry["learning_rate"], reference))
    lines = [f"{run.name}: {run.steps} steps, recipe {run.recipe.name}, {len(run.log)} logged points"]
    for name, tolerance, scale in (
        ("sparsity", SPARSITY_TOLERANCE, 1.0),
        ("learning_rate", LR_TOLERANCE, run.learning_rate),
    ):
        points = series[name]
        if not points:
            lines.append(f"  {name}: not in the logs")
            continue
        worst = max(points, key=lambda p: abs(p[1] - p[2]))
        deviation = abs(worst[1] - worst[2]) / scale
        verdict = "matches" if deviation <= tolerance else "DEPARTS from"
        lines.append(
            f"  {name}: {verdict} the reference at {len(points)} logged steps (largest difference "
            f"{deviation:.2e}{' of the peak' if name == 'learning_rate' else ''} at step {worst[0]}: logged "
            f"{worst[1]:.6g}, reference {worst[2]:.6g})"
        )
    shares = [(int(e.get("step", 0)), distillation_share(e, run.recipe.distillation)) for e in run.log]
    shares = [(s, v) for s, v in shares if v is not None]
    if shares:
        (first, start), (last, end) = shares[0], shares[-1]
        lines.append(
            f"  distillation share of the loss: {start:.1%} at step {first}, {end:.1%} at step {last}"
        )
    else:
        lines.append("  distillation share: the logs have no loss terms (runs before they were logged)")
    return lines, series


def plot(run: Run, series: dict[str, list[tuple[int, float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    steps = range(1, run.steps + 1)  # after k = 1 … T optimizer steps, as the Trainer logs
    schedule, optimizer = run.recipe.schedule, run.recipe.optimizer
    curves = (
        (
            "sparsity",
            [zhu_gupta(s, run.steps, schedule) for s in steps],
            "Zhu & Gupta cubic, after each step",
        ),
        (
            "learning_rate",
            [
                run.learning_rate * rewinding_rate(s - 1, run.steps, schedule, optimizer.warmup_ratio)
                for s in steps
            ],
            "reference rewinding schedule (capped at 1)",
        ),
    )
    for ax, (name, reference, label) in zip(axes, curves, strict=True):
        ax.plot(list(steps), reference, color="gray", label=label)
        points = series[name]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o", markersize=3, label="logged")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{run.name}: logged against the reference formulas")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run_from_record(stage: str, results: Path) -> Run:
    import budget_sweep

    from pruneofa.training.recipe import load_recipe

    records = budget_sweep.latest(budget_sweep.read_records(results))
    if stage not in records:
        raise SystemExit(
            f"pruning_logs: no record of {stage} in {results}; pick one of the prune stages there"
        )
    record = records[stage]
    base, distillation = budget_sweep.ROWS[record["row"]]
    recipe = load_recipe(base)
    if distillation:
        recipe = recipe.model_copy(
            update={"distillation": recipe.distillation.model_copy(update=distillation)}
        )
    return Run(stage, record["steps"], record["learning_rate"], recipe, record.get("log", []))


def run_from_folder(folder: Path) -> Run:
    from pruneofa.core.manifest import read_manifest
    from pruneofa.training.recipe import load_recipe

    training = read_manifest(folder).training
    recipe = load_recipe(folder / "recipe.yaml")
    return Run(folder.name, training.steps, training.learning_rate, recipe, training.loss_curve)


def run_from_trainer_state(path: Path, recipe_name: str, steps: int, learning_rate: float | None) -> Run:
    from pruneofa.training.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    state = json.loads(path.read_text(encoding="utf-8"))
    log = [e for e in state.get("log_history", []) if "loss" in e]
    return Run(path.parent.name, steps, learning_rate or recipe.optimizer.learning_rate, recipe, log)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", type=Path, help="a pruning run's output folder")
    parser.add_argument("--record", help="a prune stage of the budget sweep's results file")
    parser.add_argument("--results", type=Path, help="the results file (default: the committed one)")
    parser.add_argument("--trainer-state", type=Path, help="a checkpoint's trainer_state.json")
    parser.add_argument("--recipe", help="with --trainer-state: the recipe that ran")
    parser.add_argument("--steps", type=int, help="with --trainer-state: the run's total steps")
    parser.add_argument(
        "--learning-rate", type=float, help="with --trainer-state: the peak rate, if not the recipe's"
    )
    parser.add_argument("--out", type=Path, help="write the two plots here (PNG)")
    args = parser.parse_args()
    if args.record:
        import budget_sweep

        run = run_from_record(args.record, args.results or budget_sweep.RESULTS)
    elif args.trainer_state:
        if not (args.recipe and args.steps):
            parser.error("--trainer-state needs --recipe and --steps")
        run = run_from_trainer_state(args.trainer_state, args.recipe, args.steps, args.learning_rate)
    elif args.folder:
        run = run_from_folder(args.folder)
    else:
        parser.error("give a run folder, --record STAGE or --trainer-state FILE")
    lines, series = check(run)
    print("\n".join(lines))
    if args.out:
        out = args.out if args.out.suffix else args.out.with_suffix(".png")  # what matplotlib writes
        plot(run, series, out)
        print(f"  plots: {out}")
    return 1 if any("DEPARTS" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
