"""benchmarks/budget_sweep.py and budget_figure.py (the study's `--sweep`): the plan's names and order, what
is re-run after a machine is lost, the tables and the figure from a synthetic results file."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _module(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # budget_sweep imports pruneofa_study's task table
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep():
    return _module("budget_sweep")


@pytest.fixture(scope="module")
def figure():
    return _module("budget_figure")


def _plan(sweep, out: Path):
    budgets = sweep.SweepBudgets(
        prune=[300, 1200, 4800],
        transfer=[300, 1200],
        teacher=400,
        strong_teacher=1600,
        check=1200,
        block=1200,
        block_transfer=300,
        block_tasks=["sst2", "mrpc"],
        seeds=[0, 1],
    )
    options = dict(
        common=[], corpus="c.txt", data=Path("data"), model=[], mlm_limit=[], task_options=[], lr=2e-4
    )
    return sweep.plan(out, budgets, **options)


def test_plan_names_encode_the_budgets_and_runs_seed_by_seed_cheapest_first(sweep, tmp_path):
    stages = _plan(sweep, tmp_path)
    names = [s.name for s in stages]
    assert len(names) == len(set(names)) == 58
    assert names[:3] == ["teacher-mlm-t400", "pruned-90-hkd-t400-p300", "dense-sst2-f300-s0"]
    for required in (
        "pruned-0-hkd-t400-p300-sst2-f1200-s1",
        "pruned-90-kd-t400-p1200-sst2-f300-s1",
        "pruned-1x4-hkd-t400-p1200-mrpc-f300-s0",
        "pruned-4x1-hkd-t400-p1200-sst2-f300-s1",
        "pruned-90-hkd-t1600-p4800-sst2-f1200-s0",
    ):
        assert required in names
    # every stage after the ones it reads; the first seed's stages cover every budget, cheapest first,
    # before any stage of the second seed (whose pruned models are the first seed's)
    for index, stage in enumerate(stages):
        assert all(names.index(need) < index for need in stage.needs), stage.name
    # seed by seed, except the full-vocabulary-KD check's other seed, which follows the first at once
    # (with the dense task teacher of that seed, which its transfers read)
    check = {f"pruned-{row}-t400-p1200-sst2-f300-s1" for row in ("90-hkd", "0-hkd", "90-kd")}
    check.add("dense-sst2-f300-s1")
    first_kd = names.index("pruned-90-kd-t400-p1200-sst2-f300-s0")
    assert sorted(names.index(name) for name in check) == list(range(first_kd + 1, first_kd + 5))
    seeds = [int(s.fields["seed"]) for s in stages if "seed" in s.fields and s.name not in check]
    assert seeds == sorted(seeds) and set(seeds) == {0, 1}
    first_seed = [s for s in stages if s.fields.get("seed", 0) == 0]
    budget = [int(s.fields["prune_steps"]) for s in first_seed if "prune_steps" in s.fields]
    assert budget == sorted(budget) and set(budget) == {300, 1200, 4800}
    first_of_seed_1 = next(
        i for i, s in enumerate(stages) if s.fields.get("seed") == 1 and s.name not in check
    )
    assert max(i for i, s in enumerate(stages) if s.kind == "prune") < first_of_seed_1
    # at the check budget the full-vocabulary-KD row runs before the longer transfer budget
    kd_transfer = names.index("pruned-90-kd-t400-p1200-sst2-f300-s0")
    assert names.index("pruned-90-hkd-t400-p1200-sst2-f300-s0") < kd_transfer
    assert kd_transfer < names.index("pruned-90-hkd-t400-p1200-sst2-f1200-s0")
    # a full-vocabulary-KD row uses the built-in recipe, the sweep's rows a derived hidden-state/bf16 one
    kd = next(s for s in stages if s.name == "pruned-90-kd-t400-p1200")
    assert kd.argv[kd.argv.index("--recipe") + 1] == "pruneofa-90"
    hkd = next(s for s in stages if s.name == "pruned-1x4-hkd-t400-p1200")
    recipe = Path(hkd.argv[hkd.argv.index("--recipe") + 1])
    text = recipe.read_text()
    assert "block_shape:\n  - 1\n  - 4" in text and "teacher_precision: bfloat16" in text


def test_a_lost_machine_reruns_only_the_models_that_unfinished_stages_need(sweep, tmp_path):
    stages = _plan(sweep, tmp_path)
    evaluations = {s.name for s in stages if s.evaluates}
    first = "pruned-90-hkd-t400-p300-sst2-f300-s0"
    # nothing on disk, every evaluation stage recorded but one: only that one and the models it reads
    need = sweep.required(stages, tmp_path, evaluations - {first})
    assert need == {first, "pruned-90-hkd-t400-p300", "dense-sst2-f300-s0", "teacher-mlm-t400"}
    # its pruned model still on disk: the MLM teacher is not needed again
    (tmp_path / "pruned-90-hkd-t400-p300").mkdir()
    (tmp_path / "pruned-90-hkd-t400-p300" / "pruneofa.json").write_text("{}")
    need = sweep.required(stages, tmp_path, evaluations - {first})
    assert need == {first, "pruned-90-hkd-t400-p300", "dense-sst2-f300-s0"}
    assert sweep.required(stages, tmp_path, evaluations) == set()


def test_after_a_lost_machine_the_next_missing_point_runs_first_with_just_its_models(sweep, tmp_path):
    """This repository's own case (2026-12-08): every point up to the block rows recorded, nothing on disk.
    The block rows run next, each after the models it reads, and the pruned models only later points read
    (the second seed's) are retrained after them, not where the plan first used them."""
    stages = _plan(sweep, tmp_path)
    names = [s.name for s in stages]
    block = names.index("pruned-1x4-hkd-t400-p1200-sst2-f300-s0")
    done = {s.name for s in stages[:block] if s.evaluates}
    order = [s.name for s in sweep.running_order(stages, sweep.required(stages, tmp_path, done))]
    assert order[:4] == [
        "teacher-mlm-t400",
        "pruned-1x4-hkd-t400-p1200",
        "dense-sst2-f300-s0",
        "pruned-1x4-hkd-t400-p1200-sst2-f300-s0",
    ]
    assert order.index("pruned-90-hkd-t400-p300") > order.index("pruned-4x1-hkd-t400-p1200-mrpc-f300-s0")
    # every stage after the models it reads, and each once
    assert len(order) == len(set(order))
    position = {name: i for i, name in enumerate(order)}
    for stage in stages:
        if stage.name in position:
            assert all(position[need] < position[stage.name] for need in stage.needs if need in position)


def _synthetic(path: Path, *, slope: float = 2.0, intercept: float = -8.0, noise: float = 0.2) -> None:
    """Records of a sweep whose gap is intercept + slope·log10(steps) ± noise (seed 0 +, seed 1 −)."""
    base = {"cpu": "test CPU", "isa": ["avx2"], "steps": 1, "step_time_s": 1.0, "wall_s": 60.0}
    records = []
    for transfer in (300, 1200):
        for seed in (0, 1):
            dense = 85.0 + 1.0 * seed  # accuracy in %, as the manifests record it
            records.append(
                {**base, "stage": f"dense-sst2-f{transfer}-s{seed}", "kind": "dense", "row": "dense"}
                | {"task": "sst2", "seed": seed, "finetune_steps": transfer, "metrics": {"accuracy": dense}}
                | {"command": "pruneofa teacher …"}
            )
            for teacher, prunes in ((400, (300, 1200, 4800)), (1600, (4800,))):
                for prune in prunes:
                    gap = intercept + slope * math.log10(prune) + (noise if seed == 0 else -noise)
                    for row, value in (("90-hkd", gap), ("0-hkd", 0.3)):
                        name = f"pruned-{row}-t{teacher}-p{prune}-sst2-f{transfer}-s{seed}"
                        records.append(
                            {
                                **base,
                                "stage": name,
                                "kind": "transfer",
                                "row": row,
                                "task": "sst2",
                                "seed": seed,
                            }
                            | {"teacher_steps": teacher, "prune_steps": prune, "finetune_steps": transfer}
                            | {"metrics": {"accuracy": dense + value}, "command": "pruneofa finetune …"}
                        )
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_the_figure_has_a_line_per_transfer_budget_and_the_projection(sweep, figure, tmp_path):
    results = tmp_path / "results.jsonl"
    _synthetic(results)
    records = sweep.read_records(results)
    kd = next(r for r in records if r["stage"] == "pruned-90-hkd-t400-p1200-sst2-f300-s0")
    records.append(kd | {"stage": kd["stage"].replace("90-hkd", "90-kd"), "row": "90-kd"})
    fig, words = figure.figure(records)
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert sum(label.startswith("90 %, transfer ") for label in labels) == 2  # one line per transfer budget
    assert sum(label.startswith("control pruneofa-0, transfer ") for label in labels) == 2
    assert [label for label in labels if "full-vocabulary KD" in label] == [
        "paper's full-vocabulary KD, transfer 300 (1 seed)"
    ]
    assert any("paper" in label for label in labels) and any("4x longer" in label for label in labels)
    assert any("projection" in label for label in labels)
    assert ax.get_xscale() == "log"
    # the trend is exact up to the seeds' ±0.2: it reaches −1 at 10^((−1 + 8) / 2) ≈ 3,162 steps
    projection = figure.project(figure.sweep_points(records)[0][1200])
    assert projection.slope == pytest.approx(2.0) and projection.steps == pytest.approx(10**3.5)
    assert projection.low <= projection.steps <= projection.high and projection.never == 0.0
    assert "projection, not a result" in words and "3,162" in words
    png = tmp_path / "gap.png"
    assert figure.draw(records, png).startswith(f"figure {png}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_a_widening_gap_is_not_projected_to_close(sweep, figure, tmp_path):
    results = tmp_path / "results.jsonl"
    _synthetic(results, slope=-1.0, intercept=-3.0)
    points = figure.sweep_points(sweep.read_records(results))[0][300]
    projection = figure.project(points)
    assert projection.steps is None and projection.never == 1.0
    assert "does not close the gap" in projection.sentence()


def test_the_report_pairs_seeds_and_names_every_stage(sweep, tmp_path):
    results = tmp_path / "results.jsonl"
    _synthetic(results)
    text = sweep.report(results)
    # 90 % at 300 pruning / 300 transfer steps: gaps −3.046 ± 0.2 per seed → mean −3.05, sd 0.28
    row = next(line for line in text.splitlines() if line.startswith("| 400 / 300 / 300 |"))
    assert "-3.05 ± 0.28 (2)" in row and "0.30 ± 0.00 (2)" in row
    assert "| 1600 / 4800 / 1200 |" in text
    assert "2 seeds suffice so far" in text  # sd 0.28 against a change of 1.2 points per 4x steps
    assert text.count("test CPU (avx2)") == len(sweep.latest(sweep.read_records(results)))


def test_a_spread_larger_than_the_change_asks_for_a_third_seed(sweep, tmp_path):
    results = tmp_path / "results.jsonl"
    _synthetic(results, noise=2.0)  # sd 2.83 between two seeds, the gap changes by 1.2 per 4x steps
    advice = sweep.third_seed_advice(sweep.latest(sweep.read_records(results)))
    assert (
        advice.startswith("Needs a third seed") and "300 → 1200 pruning steps at 300 transfer steps" in advice
    )


FAKE_PRUNEOFA = """
import sys
from pathlib import Path

from pruneofa.core.manifest import Manifest, SourceInfo, TrainingInfo, write_manifest

argv = sys.argv[1:]
output = Path(argv[argv.index("--output") + 1])
with open(sys.argv[0] + ".calls", "a") as calls:
    calls.write(output.name + "\\n")
output.mkdir(parents=True)
kind = {"prune": "prune", "finetune": "finetune"}.get(argv[0], "task-teacher")
training = TrainingInfo(
    kind=kind, task="sst2", data="d", steps=2, batch_size=1, seq_len=16, learning_rate=1e-4, seed=0,
    wall_time_s=1.0, step_time_s=0.5, loss_curve=[{"step": 1.0, "loss": 1.0, "sparsity": 0.0}],
)
manifest = Manifest(
    stage="teacher", command=["pruneofa", *argv], created_at="2026-12-07T00:00:00+00:00", versions={},
    source=SourceInfo(model="m", model_type="bert"), training=training,
    metrics={"accuracy": 80.0} if argv[0] != "prune" and "--task" in argv else {},
)
write_manifest(output, manifest)
"""


def test_records_outlive_the_out_folder_and_only_missing_work_is_redone(sweep, tmp_path):
    """The sweep as it runs across sessions: every finished stage appends its record; with the out folder
    gone, recorded points are not run again, and an unrecorded one re-runs just the models it needs."""
    fake = tmp_path / "pruneofa_fake.py"
    fake.write_text(FAKE_PRUNEOFA)
    calls = Path(str(fake) + ".calls")
    out, results = tmp_path / "out", tmp_path / "results.jsonl"
    budgets = sweep.SweepBudgets([4], [2], 4, 0, 999, 999, 2, ["sst2"], [0])
    options = dict(
        common=[], corpus="c.txt", data=Path("data"), model=[], mlm_limit=[], task_options=[], lr=2e-4
    )

    def run() -> list[str]:
        calls.unlink(missing_ok=True)
        assert (
            sweep.run(sweep.plan(out, budgets, **options), out, results, [sys.executable, str(fake)], None)
            == 0
        )
        return calls.read_text().split() if calls.exists() else []

    first = run()
    assert first == [
        "teacher-mlm-t4",
        "pruned-90-hkd-t4-p4",
        "dense-sst2-f2-s0",
        "pruned-90-hkd-t4-p4-sst2-f2-s0",
        "pruned-0-hkd-t4-p4",
        "pruned-0-hkd-t4-p4-sst2-f2-s0",
    ]
    records = sweep.read_records(results)
    assert [r["stage"] for r in records] == first
    transfer = records[3]
    assert (
        transfer["metrics"] == {"accuracy": 80.0} and transfer["seed"] == 0 and transfer["prune_steps"] == 4
    )
    assert transfer["cpu"] and isinstance(transfer["isa"], list) and transfer["wall_s"] > 0
    assert "--output" in transfer["command"] and records[1]["log"] == [
        {"step": 1.0, "loss": 1.0, "sparsity": 0.0}
    ]

    shutil.rmtree(out)  # a new machine: nothing on disk, every point recorded
    assert run() == []
    # a point whose record is missing re-runs with the models it reads, and no other
    results.write_text("".join(line + "\n" for line in results.read_text().splitlines()[:-1]))
    assert run() == [
        "teacher-mlm-t4",
        "pruned-0-hkd-t4-p4",
        "dense-sst2-f2-s0",
        "pruned-0-hkd-t4-p4-sst2-f2-s0",
    ]
    assert len(sweep.latest(sweep.read_records(results))) == 6
