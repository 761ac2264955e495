"""The budget sweep of `benchmarks/pruneofa_study.py --sweep`: the accuracy gap as a function of budget.

MiniLM, SST-2 dev: 90 % unstructured pruning against the dense model and the `pruneofa-0` control trained
with the same steps, at every pruning budget (300, 1,200, 4,800 steps by default) and transfer budget
(300, 1,200), each point with every seed (2 by default). The sweep distils hidden states from a bf16
teacher (`SWEEP_DISTILLATION`, the previous study's cheapest distillation within noise of the paper's);
three side rows check what it rests on:

  full-vocabulary KD   pruneofa-90 as the paper distils, at the check budget (1,200), SST-2: does the
                       sweep's conclusion hold for the paper's loss?
  block patterns       pruneofa-90-block1x4 / -block4x1 (with the sweep's distillation) at the block
                       budget (1,200), SST-2 and MRPC, against 90 % unstructured at the same budget
  teacher budget       the largest pruning budget once more from a teacher prepared for 1,600 steps
                       instead of 400: a weak teacher or a short pruning run?

Stage names encode every budget: `teacher-mlm-t400`, `pruned-90-hkd-t400-p300` (row, teacher steps,
pruning steps), `dense-sst2-f300-s0` (task, transfer steps, seed), `pruned-90-hkd-t400-p300-sst2-f300-s0`.
Stages run cheapest point first: every 300-step point with all its seeds, then 1,200, then 4,800.

Persistence: every finished stage appends one JSON line to the results file (committed,
`benchmarks/results/budget_sweep.jsonl`): stage, command, seed, budgets, metrics, wall time, CPU and ISA,
and for the training stages their logged series (sparsity, learning rate, loss terms). An evaluation
stage (dense or transfer) with a record is never run again; a model stage (MLM teacher, pruning, a dense
task teacher) is (re)run only when a pending stage needs its folder and the folder is missing, e.g. on a
new machine. `--report` builds the tables and the figure from the results file alone.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "budget_sweep.jsonl"
# hidden-state MSE alone with the teacher's forward in bf16: the study's `pruned-90-hidden-bf16` variant
SWEEP_DISTILLATION = {"alpha_kd": 0.0, "hidden_states": 1.0, "teacher_precision": "bfloat16"}
ROWS = {  # row → (built-in recipe, distillation fields changed; None: the recipe's own, the paper's KD)
    "90-hkd": ("pruneofa-90", SWEEP_DISTILLATION),
    "0-hkd": ("pruneofa-0", SWEEP_DISTILLATION),
    "90-kd": ("pruneofa-90", None),
    "1x4-hkd": ("pruneofa-90-block1x4", SWEEP_DISTILLATION),
    "4x1-hkd": ("pruneofa-90-block4x1", SWEEP_DISTILLATION),
}
ROW_TITLES = {
    "dense": "dense MiniLM fine-tuned (same transfer steps)",
    "0-hkd": "control pruneofa-0 (hidden-state KD, bf16 teacher)",
    "90-hkd": "90 % unstructured (hidden-state KD, bf16 teacher)",
    "90-kd": "90 % unstructured (full-vocabulary KD, the paper's)",
    "1x4-hkd": "90 % in 1×4 blocks (hidden-state KD, bf16 teacher)",
    "4x1-hkd": "90 % in 4×1 blocks (hidden-state KD, bf16 teacher)",
}
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
SERIES = ("step", "loss", "learning_rate", "sparsity", "target_sparsity")  # + every *_loss term
MAX_POINTS = 250  # logged points kept per training stage in its record


@dataclass
class Stage:
    """One `pruneofa` command of the sweep, with what it needs and what its record says about it."""

    name: str
    kind: str  # teacher-mlm | prune | dense | transfer
    argv: list[str]
    needs: list[str] = field(default_factory=list)  # stages whose output folders it reads
    fields: dict[str, Any] = field(default_factory=dict)  # row, task, seed, budgets

    @property
    def evaluates(self) -> bool:
        return self.kind in ("dense", "transfer")


@dataclass
class SweepBudgets:
    prune: list[int]
    transfer: list[int]
    teacher: int
    strong_teacher: int  # the second teacher budget, at the largest pruning budget only
    check: int  # pruning budget of the full-vocabulary KD check
    block: int  # pruning budget of the block rows
    block_transfer: int
    block_tasks: list[str]
    seeds: list[int]


def derived_recipe(out: Path, row: str) -> str:
    """The row's recipe: the built-in one, or a copy with the sweep's distillation in the out folder."""
    from pruneofa.training.recipe import dump_recipe, load_recipe

    base, distillation = ROWS[row]
    if distillation is None:
        return base
    recipe = load_recipe(base)
    recipe = recipe.model_copy(
        update={
            "name": f"{base}-hkd-bf16",
            "distillation": recipe.distillation.model_copy(update=distillation),
        }
    )
    path = out / "recipes" / f"{recipe.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    dump_recipe(recipe, path)
    return str(path)


def plan(out: Path, budgets: SweepBudgets, *, common: list[str], corpus: str, data: Path,
         model: list[str], mlm_limit: list[str], task_options: list[str], lr: float) -> list[Stage]:  # fmt: skip
    """Every stage of the sweep in running order (dependencies always before their users)."""
    stages: dict[str, Stage] = {}

    def add(stage: Stage) -> str:
        if stage.name not in stages:
            stage.argv = [*stage.argv, *common, "--output", str(out / stage.name)]
            stages[stage.name] = stage
        return stage.name

    def teacher_mlm(steps: int) -> str:
        argv = ["teacher", *model, "--corpus", corpus, "--steps", str(steps), *mlm_limit]
        return add(Stage(f"teacher-mlm-t{steps}", "teacher-mlm", argv, [], {"teacher_steps": steps}))

    def pruned(row: str, teacher: int, steps: int) -> str:
        mlm = teacher_mlm(teacher)
        argv = ["prune", str(out / mlm), "--teacher", str(out / mlm), "--corpus", corpus]
        argv += ["--recipe", derived_recipe(out, row), "--steps", str(steps), *mlm_limit]
        budget = {"row": row, "teacher_steps": teacher, "prune_steps": steps}
        return add(Stage(f"pruned-{row}-t{teacher}-p{steps}", "prune", argv, [mlm], budget))

    def task_argv(task: str, steps: int, seed: int) -> list[str]:
        from pruneofa_study import TASKS

        folder = str(data / "glue" / TASKS[task])
        budget = ["--steps", str(steps), "--learning-rate", str(lr), *task_options, "--seed", str(seed)]
        return ["--task", task, "--data", folder, *budget]

    def dense(task: str, steps: int, seed: int) -> str:
        name = f"dense-{task}-f{steps}-s{seed}"
        budget = {"row": "dense", "task": task, "finetune_steps": steps, "seed": seed}
        return add(Stage(name, "dense", ["teacher", *model, *task_argv(task, steps, seed)], [], budget))

    def transfer(row: str, teacher: int, prune_steps: int, task: str, steps: int, seed: int) -> None:
        source, teacher_dir = pruned(row, teacher, prune_steps), dense(task, steps, seed)
        argv = [
            "finetune",
            str(out / source),
            *task_argv(task, steps, seed),
            "--teacher",
            str(out / teacher_dir),
        ]
        budget = {**stages[source].fields, "task": task, "finetune_steps": steps, "seed": seed}
        name = f"{source}-{task}-f{steps}-s{seed}"
        add(Stage(name, "transfer", argv, [source, teacher_dir], budget))

    # Seed by seed: the first seed covers every budget (the curve's shape, early in a long run), the next
    # seeds add the error bars; a pruned model is shared by all seeds (only the task stages have one).
    # At the check budget the full-vocabulary-KD row comes right after the first transfer budget: the
    # hidden-state rows' distillation is a few % of their loss, and at 1,200 pruning steps their student
    # drifted further from the teacher than at 300 (docs/training.md), so the check decides how to read
    # the rest of the curve. Its other seeds follow at once (the one exception to seed-by-seed order): they
    # cost a few transfers each (every seed reads the same pruned models), and the check needs 2 seeds
    # before the fast recipes can ship.
    for seed in budgets.seeds:
        for prune_steps in sorted(budgets.prune):
            for index, steps in enumerate(budgets.transfer):
                for row in ("90-hkd", "0-hkd"):
                    transfer(row, budgets.teacher, prune_steps, "sst2", steps, seed)
                if index == 0 and prune_steps == budgets.check:
                    transfer("90-kd", budgets.teacher, prune_steps, "sst2", steps, seed)
                    for other in budgets.seeds[1:] if seed == budgets.seeds[0] else []:
                        for row in ("90-hkd", "0-hkd", "90-kd"):
                            transfer(row, budgets.teacher, prune_steps, "sst2", steps, other)
            if prune_steps == budgets.block:
                for task in budgets.block_tasks:
                    for row in ("90-hkd", "1x4-hkd", "4x1-hkd"):
                        transfer(row, budgets.teacher, prune_steps, task, budgets.block_transfer, seed)
            if prune_steps == max(budgets.prune) and budgets.strong_teacher:
                for steps in budgets.transfer:
                    transfer("90-hkd", budgets.strong_teacher, prune_steps, "sst2", steps, seed)
    return list(stages.values())


# --- the results file ---------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest record of each stage (a model stage re-run on a new machine appends another)."""
    return {record["stage"]: record for record in records}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One line, written with a single call and flushed to disk (a crash loses at most this line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def cpu_facts() -> dict[str, Any]:
    """The CPU model and its relevant instruction sets, as lscpu reports them."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"^(?:Model name|model name)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^(?:Flags|flags)\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(flags.group(1).split()) if flags else set()
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "isa": [flag for flag in ISA_FLAGS if flag in present],
        "cores": os.cpu_count(),
    }


def _series(curve: list[dict[str, float]]) -> list[dict[str, float]]:
    """The logged points a paper check needs, at most MAX_POINTS of them (evenly spaced, last kept)."""
    keep = [{k: v for k, v in e.items() if k in SERIES or k.endswith("_loss")} for e in curve]
    if len(keep) <= MAX_POINTS:
        return keep
    stride = len(keep) / MAX_POINTS
    picked = [keep[int(i * stride)] for i in range(MAX_POINTS)]
    return picked[:-1] + [keep[-1]]


def stage_record(stage: Stage, folder: Path, wall_s: float | None, cpu: dict[str, Any]) -> dict[str, Any]:
    from pruneofa.core.manifest import read_manifest

    manifest = read_manifest(folder)
    t = manifest.training
    sparsity = t.layer_sparsity
    record = {
        "stage": stage.name,
        "kind": stage.kind,
        **stage.fields,
        "command": "pruneofa " + " ".join(stage.argv),
        "metrics": dict(manifest.metrics),
        "steps": t.steps,
        "batch_size": t.batch_size,
        "seq_len": t.seq_len,
        "learning_rate": t.learning_rate,
        "train_wall_s": round(t.wall_time_s, 1),
        "step_time_s": round(t.step_time_s, 3),
        "wall_s": None if wall_s is None else round(wall_s, 1),  # the whole command (None: not seen run)
        "mean_sparsity": round(sum(sparsity.values()) / len(sparsity), 6) if sparsity else 0.0,
        "final_loss": t.loss_curve[-1].get("loss") if t.loss_curve else None,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        **cpu,
    }
    if stage.kind in ("teacher-mlm", "prune"):
        record["log"] = _series(t.loss_curve)
    return record


# --- running ------------------------------------------------------------------------------------------


def required(stages: list[Stage], out: Path, done: set[str]) -> set[str]:
    """Stages to run: every evaluation stage without a record, and (walking back) every stage whose
    folder one of those needs and that is missing."""
    need = {s.name for s in stages if s.evaluates and s.name not in done}
    for stage in reversed(stages):
        if stage.name in need and not (out / stage.name / "pruneofa.json").is_file():
            need.update(stage.needs)
    return need


def running_order(stages: list[Stage], need: set[str]) -> list[Stage]:
    """The stages of ``need`` in the order the plan's points (transfers) come, each preceded by the missing
    models it reads. Plan order alone would rebuild a shared model where the plan first used it: after a lost
    machine, a pruned model whose early points are recorded but whose later ones are not would be
    retrained ahead of the next missing point, which may not need it (e.g. the block rows before the
    second seed's points)."""
    by_name = {stage.name: stage for stage in stages}
    order: list[Stage] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed or name not in need:
            return
        placed.add(name)
        for dependency in by_name[name].needs:
            place(dependency)
        order.append(by_name[name])

    for stage in stages:  # the transfers are the sweep's points; dense task teachers come with them
        if stage.kind == "transfer":
            place(stage.name)
    for stage in stages:  # anything needed that no transfer reads
        place(stage.name)
    return order


def run(stages: list[Stage], out: Path, results: Path, pruneofa: list[str], deadline_s: float | None) -> int:
    cpu = cpu_facts()
    done = set(latest(read_records(results)))
    need = required(stages, out, done)
    began = time.perf_counter()
    print(f"[sweep] {len(stages)} stages, {len(need)} to run or record; results in {results}", flush=True)
    for stage in running_order(stages, need):
        folder = out / stage.name
        finished = (folder / "pruneofa.json").is_file()
        if stage.name not in need:
            continue
        if finished:
            if stage.evaluates and stage.name not in done:  # ran before its record was written
                append_record(results, stage_record(stage, folder, None, cpu))
            print(f"[sweep] {stage.name}: done, skipped", flush=True)
            continue
        if deadline_s is not None and time.perf_counter() - began > deadline_s:
            print(f"[sweep] {stage.name}: not started, past the {deadline_s:.0f} s deadline", flush=True)
            break
        print(f"[sweep] {stage.name}: pruneofa {' '.join(stage.argv)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([*pruneofa, *stage.argv])
        wall = time.perf_counter() - started
        print(f"[sweep] {stage.name}: exit {code} after {wall:.0f} s", flush=True)
        if code != 0:
            return code
        append_record(results, stage_record(stage, folder, wall, cpu))
    return 0


# --- the tables ---------------------------------------------------------------------------------------


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f} (1 seed)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)})"


def accuracies(records: dict[str, dict[str, Any]], task: str = "sst2") -> dict[tuple, dict[int, float]]:
    """(row, teacher, prune, finetune steps) → {seed: accuracy %} for the task; dense rows have no
    teacher or prune steps (None)."""
    table: dict[tuple, dict[int, float]] = {}
    for r in records.values():
        if r["kind"] not in ("dense", "transfer") or r.get("task") != task or "accuracy" not in r["metrics"]:
            continue
        key = (r["row"], r.get("teacher_steps"), r.get("prune_steps"), r["finetune_steps"])
        table.setdefault(key, {})[r["seed"]] = r["metrics"]["accuracy"]
    return table


def gaps(table: dict[tuple, dict[int, float]], row: str, teacher: int, prune: int, steps: int) -> list[float]:
    """Per seed, the row's accuracy minus the dense model's of the same seed and transfer steps (the
    transfer distils from that very dense model, so the seeds pair)."""
    sparse, dense = table.get((row, teacher, prune, steps), {}), table.get(("dense", None, None, steps), {})
    return [sparse[s] - dense[s] for s in sorted(sparse) if s in dense]


def _hours(records: dict[str, dict[str, Any]], name: str) -> str:
    r = records.get(name)
    wall = r and (r.get("wall_s") or r.get("train_wall_s"))
    return f"{wall / 3600:.2f} h" if wall else "–"


def budget_table(records: dict[str, dict[str, Any]]) -> str:
    table = accuracies(records)
    points = sorted({(k[1], k[2], k[3]) for k in table if k[0] in ("90-hkd", "0-hkd")})
    lines = [
        "| teacher / prune / transfer steps | dense SST-2 | control pruneofa-0 | 90 % | gap 90 % − dense "
        "(per-seed pairs) | gap control − dense | seeds | prune stage wall (90 %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for teacher, prune, steps in points:
        dense = list(table.get(("dense", None, None, steps), {}).values())
        control = list(table.get(("0-hkd", teacher, prune, steps), {}).values())
        sparse = table.get(("90-hkd", teacher, prune, steps), {})
        lines.append(
            f"| {teacher} / {prune} / {steps} | {_mean_sd(dense)} | {_mean_sd(control)} | "
            f"{_mean_sd(list(sparse.values()))} | {_mean_sd(gaps(table, '90-hkd', teacher, prune, steps))} | "
            f"{_mean_sd(gaps(table, '0-hkd', teacher, prune, steps))} | {','.join(map(str, sorted(sparse)))} | "
            f"{_hours(records, f'pruned-90-hkd-t{teacher}-p{prune}')} |"
        )
    return "\n".join(lines)


def third_seed_advice(records: dict[str, dict[str, Any]]) -> str:
    """Where the seeds' spread of the gap exceeds its change to the next pruning budget, the point needs a
    third seed (issue 26) before the change can be read as one."""
    table = accuracies(records)
    flagged = []
    for teacher, steps in sorted({(k[1], k[3]) for k in table if k[0] == "90-hkd"}):
        budgets = sorted(k[2] for k in table if k[0] == "90-hkd" and k[1] == teacher and k[3] == steps)
        for low, high in zip(budgets, budgets[1:], strict=False):
            a, b = gaps(table, "90-hkd", teacher, low, steps), gaps(table, "90-hkd", teacher, high, steps)
            if len(a) < 2 or len(b) < 2:
                continue
            spread = max(statistics.stdev(a), statistics.stdev(b))
            change = statistics.mean(b) - statistics.mean(a)
            if spread > abs(change):
                flagged.append(
                    f"{low} → {high} pruning steps at {steps} transfer steps (sd {spread:.2f} > change {change:+.2f})"
                )
    if not flagged:
        return "No point's seed spread exceeds the gap's change between budgets (2 seeds suffice so far)."
    return "Needs a third seed (--seeds 0,1,2): " + "; ".join(flagged)


def side_table(records: dict[str, dict[str, Any]], rows: list[str], reference: str, tasks: list[str]) -> str:
    """The check rows (full-vocabulary KD, blocks) against the reference row at the same budgets."""
    lines = [
        "| row | task | teacher / prune / transfer steps | accuracy | Δ vs " + reference + " (per seed) |"
    ]
    lines.append("|---|---|---|---|---|")
    for task in tasks:
        table = accuracies(records, task)
        for key in sorted(k for k in table if k[0] in rows):
            row, teacher, prune, steps = key
            ref = table.get((reference, teacher, prune, steps), {})
            mine = table[key]
            delta = [mine[s] - ref[s] for s in sorted(mine) if s in ref]
            lines.append(
                f"| {ROW_TITLES[row]} | {task} | {teacher} / {prune} / {steps} | {_mean_sd(list(mine.values()))} "
                f"| {_mean_sd(delta)} |"
            )
    return "\n".join(lines)


def stage_table(records: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| stage | seed | steps | metrics | s/step | wall | CPU (ISA) | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records.values():
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items() if k not in ("mlm_head_added",))
        wall = r.get("wall_s") or r.get("train_wall_s")
        lines.append(
            f"| {r['stage']} | {r.get('seed', '')} | {r['steps']} | {metrics or '–'} | {r['step_time_s']:.2f} "
            f"| {wall / 60:.1f} min | {r['cpu']} ({', '.join(r['isa'])}) | `{r['command']}` |"
        )
    return "\n".join(lines)


def report(results: Path) -> str:
    records = latest(read_records(results))
    if not records:
        return f"no records in {results} yet"
    parts = [
        f"Results file: {results} ({len(records)} stages)",
        "",
        "SST-2 dev accuracy (%), mean ± sd (seeds); gaps are per-seed differences with the dense model of "
        "the same seed and transfer steps:",
        "",
        budget_table(records),
        "",
        third_seed_advice(records),
        "",
        "Full-vocabulary KD against the sweep's hidden-state KD:",
        "",
        side_table(records, ["90-kd"], "90-hkd", ["sst2"]),
        "",
        "Block patterns against 90 % unstructured:",
        "",
        side_table(records, ["1x4-hkd", "4x1-hkd"], "90-hkd", ["sst2", "mrpc"]),
        "",
        stage_table(records),
    ]
    return "\n".join(parts)
