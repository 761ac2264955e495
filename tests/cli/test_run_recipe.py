"""pruneofa run: a tiny pipeline runs, skips finished stages, resumes after a deleted or failed stage,
and refuses bad recipes before any work."""

from __future__ import annotations

import json

import pytest
import yaml

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest
from pruneofa.recipe_runner import load_run_recipe, same_work

BUDGET = {"steps": 4, "batch_size": 4, "seq_len": 32, "save_steps": 2, "logging_steps": 2}


def _recipe(tmp_path, base, sst2_dir, *, teacher_steps=4, validate_data=None):
    recipe = {
        "name": "tiny",
        "model": str(base),
        "data_root": str(sst2_dir.parent),
        "output": str(tmp_path / "out"),
        "stages": [
            {
                "name": "teacher-sst2",
                "command": "teacher",
                "options": {
                    **BUDGET,
                    "steps": teacher_steps,
                    "task": "sst2",
                    "data": f"{{data}}/{sst2_dir.name}",
                },
            },
            {
                "name": "export",
                "command": "export",
                "model": "@teacher-sst2",
                "options": {"target": "openvino"},
            },
            {
                "name": "validate",
                "command": "validate",
                "model": "@export",
                "options": {
                    "reference": "@teacher-sst2",
                    "data": validate_data or f"{{data}}/{sst2_dir.name}",
                    "task": "sst2",
                },
            },
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(make_model):
    return make_model("bert", "feature-extraction")


def test_run_skips_finished_stages_and_resumes_a_deleted_one(tmp_path, base, sst2_dir, capsys):
    import shutil

    recipe = _recipe(tmp_path, base, sst2_dir)
    out = tmp_path / "out"
    assert main(["run", "--recipe", str(recipe)]) == 0
    assert read_manifest(out / "teacher-sst2").stage == "teacher"
    assert read_manifest(out / "export").stage == "export"
    report = json.loads((out / "validate.json").read_text())
    assert "passed" in report and report["task"] == "sst2"
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["done", "done", "done"]
    assert "| teacher-sst2 | teacher | done |" in (out / "summary.md").read_text()
    # The stage records its own command line, not the 'pruneofa run' that started it.
    assert read_manifest(out / "teacher-sst2").command[:2] == ["pruneofa", "teacher"]
    capsys.readouterr()

    assert main(["run", "--recipe", str(recipe)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["skipped", "skipped", "skipped"]
    assert "accuracy" in summary["stages"][0]["result"]

    shutil.rmtree(out / "export")
    (out / "validate.json").unlink()
    assert main(["run", "--recipe", str(recipe)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["skipped", "done", "done"]

    # A changed recipe does not silently reuse outputs computed differently.
    changed = _recipe(tmp_path, base, sst2_dir, teacher_steps=5)
    assert main(["run", "--recipe", str(changed)]) == 2
    assert "different command" in capsys.readouterr().err


def test_a_failed_stage_stops_the_run_and_a_rerun_continues_there(tmp_path, base, sst2_dir, capsys):
    out = tmp_path / "out"
    missing = _recipe(tmp_path, base, sst2_dir, validate_data=str(tmp_path / "missing.tsv"))
    assert main(["run", "--recipe", str(missing)]) == 2  # a missing file is caught before any work
    assert "missing.tsv does not exist" in capsys.readouterr().err and not out.exists()
    garbage = tmp_path / "garbage.tsv"
    garbage.write_text("this is not\ta GLUE file\n", encoding="utf-8")
    broken = _recipe(tmp_path, base, sst2_dir, validate_data=str(garbage))
    assert main(["run", "--recipe", str(broken)]) == 2  # ... a bad one when the stage reads it
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["done", "done", "failed"]
    fixed = _recipe(tmp_path, base, sst2_dir)
    assert main(["run", "--recipe", str(fixed)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["skipped", "skipped", "done"]


def test_bad_recipes_fail_before_any_work(tmp_path, base, sst2_dir, capsys):
    recipe = yaml.safe_load(_recipe(tmp_path, base, sst2_dir).read_text())
    cases = {
        "unknown reference": lambda r: r["stages"][1].update(model="@nowhere"),
        "unknown option": lambda r: r["stages"][2]["options"].update(no_such_flag=1),
        "output set by hand": lambda r: r["stages"][0]["options"].update(output="x"),
        "duplicate name": lambda r: r["stages"][1].update(name="teacher-sst2"),
        "unknown command": lambda r: r["stages"][1].update(command="deploy"),
    }
    for label, change in cases.items():
        broken = json.loads(json.dumps(recipe))
        change(broken)
        path = tmp_path / f"{label.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(broken), encoding="utf-8")
        assert main(["run", "--recipe", str(path)]) == 2, label
        assert not (tmp_path / "out").exists(), label
    err = capsys.readouterr().err
    assert "no earlier stage writes" in err and "unrecognized arguments: --no-such-flag" in err
    assert "sets --output" in err and "used twice" in err
    assert main(["run", "--recipe", "no-such-recipe"]) == 2


def _fake_data_root(root):
    """The files pipeline-small reads, empty: enough for planning, which checks that they exist."""
    for path in (
        "corpus/wikitext-2-raw/wiki.test.raw",
        "corpus/gutenberg/pg11.txt",
        "corpus/tinyshakespeare/input.txt",
        "glue/SST-2/train.tsv",
        "glue/SST-2/dev.tsv",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")
    return root


def test_builtin_run_recipes_parse_and_plan(capsys, tmp_path):
    data = _fake_data_root(tmp_path / "data")
    for name in ("pipeline-small", "pipeline-bert-base"):
        recipe = load_run_recipe(name)
        assert recipe.stages and main(["run", "--recipe", name, "--dry-run", "--data-root", str(data)]) == 0
    planned = capsys.readouterr().out.splitlines()
    assert any(line.startswith("pruneofa qat ") for line in planned)
    assert any("wikimedia/wikipedia:20231101.en" in line for line in planned)


def test_same_work_ignores_bookkeeping_and_number_spelling():
    a = ["teacher", "--task", "sst2", "--learning-rate", "5e-5", "--output", "a", "--logging-steps", "10"]
    b = ["teacher", "--learning-rate", "5e-05", "--task", "sst2", "--output", "b"]
    assert same_work(a, b)
    assert not same_work(a, [*b, "--steps", "3"])


def test_a_crashing_stage_still_leaves_the_summary(tmp_path, base, sst2_dir):
    from pruneofa.recipe_runner import run_recipe

    recipe = load_run_recipe(_recipe(tmp_path, base, sst2_dir))

    def crash(argv):
        raise RuntimeError("a bug in a stage")

    with pytest.raises(RuntimeError):
        run_recipe(recipe, crash, lambda argv: None)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "failed" and "a bug in a stage" in summary["stages"][1]["status"]


def test_missing_data_fails_before_any_work_even_in_a_dry_run(tmp_path, capsys):
    assert (
        main(["run", "--recipe", "pipeline-small", "--dry-run", "--data-root", str(tmp_path / "nowhere")])
        == 2
    )
    err = capsys.readouterr().err
    assert "does not exist; the data root is" in err and "--data-root" in err


def test_a_relative_data_root_is_relative_to_the_recipe_file(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "project"
    _fake_data_root(folder / "data")
    recipe = yaml.safe_load(
        yaml.safe_dump(load_run_recipe("pipeline-small").model_dump(exclude={"base_dir"}))
    )
    recipe["data_root"] = "data"
    (folder / "recipes").mkdir()
    path = folder / "recipes" / "small.yaml"
    recipe["data_root"] = "../data"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the recipe's folder: ../data from here does not exist
    assert main(["run", "--recipe", str(path), "--dry-run"]) == 0
    assert str(folder / "data" / "glue" / "SST-2") in capsys.readouterr().out.replace("recipes/../", "")


def test_without_a_data_root_the_builtin_recipes_read_the_hub(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ../shared/data here, and none is needed
    assert main(["run", "--recipe", "pipeline-small", "--dry-run"]) == 0
    planned = capsys.readouterr().out.splitlines()
    teacher = next(line for line in planned if "--output runs/pipeline-small/teacher-mlm" in line)
    assert "--corpus Salesforce/wikitext:wikitext-2-raw-v1 " in teacher
    assert sum("--data nyu-mll/glue " in line for line in planned) == 7
    assert not any("shared/data" in line or "{data" in line for line in planned)


def test_a_data_root_reads_the_local_copies_and_the_corpus_mix(capsys, tmp_path):
    data = _fake_data_root(tmp_path / "data")
    assert main(["run", "--recipe", "pipeline-small", "--dry-run", "--data-root", str(data)]) == 0
    teacher = capsys.readouterr().out.splitlines()[0]
    mix = ",".join(
        str(data / "corpus" / p) for p in ("wikitext-2-raw/wiki.test.raw", "gutenberg", "tinyshakespeare")
    )
    assert f"--corpus {mix} " in teacher


def test_pipeline_small_has_the_studys_budget():
    stages = {s.name: s.options for s in load_run_recipe("pipeline-small").stages}
    assert [stages[n]["steps"] for n in ("teacher-mlm", "pruned-90", "teacher-sst2", "pruned-90-sst2")] == [
        400,
        300,
        300,
        300,
    ]
    assert stages["teacher-sst2"]["learning_rate"] == stages["pruned-90-sst2"]["learning_rate"] == 2e-4
    assert not any("train_limit" in options for options in stages.values())


def test_unknown_data_sources_and_a_missing_data_root_are_one_line_errors(tmp_path, capsys):
    recipe = {
        "name": "mine",
        "data": {"sst2": {"hub": "nyu-mll/glue", "local": "glue/SST-2"}},
        "stages": [{"name": "t", "command": "teacher", "options": {"task": "sst2", "data": "{data:sts2}"}}],
    }
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["run", "--recipe", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "uses {data:sts2}, which the recipe's data: does not name (it names: sst2)" in err
    assert len(err.splitlines()) == 1

    recipe["stages"][0]["options"]["data"] = "{data}/glue/SST-2"  # the plain root needs a root
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["run", "--recipe", str(path), "--dry-run"]) == 2
    assert "uses {data} and the run has no data root; pass --data-root DIR" in capsys.readouterr().err


def test_steps_scale_scales_every_budget_in_the_plan(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--recipe", "pipeline-small", "--dry-run", "--steps-scale", "0.01"]) == 0
    captured = capsys.readouterr()
    assert "budget scaled by 0.01" in captured.err
    lines = {line.split(" --output ")[-1].split(" --report ")[-1]: line for line in captured.out.splitlines()}
    root = "runs/pipeline-small-steps-x0.01"  # a rehearsal does not occupy the real run's folder
    teacher = lines[f"{root}/teacher-mlm"]
    # 50 x 0.01 = 0.5 would save every step; a rehearsal saves at most twice (half the scaled steps)
    assert "--steps 4 " in teacher and "--save-steps 2 " in teacher and "--logging-steps 1 " in teacher
    assert "--eval-limit" not in teacher  # the masked-LM teacher evaluates on no dev set
    assert "--steps 3 " in lines[f"{root}/pruned-90-sst2"]
    assert (
        "--eval-limit 64 " in lines[f"{root}/pruned-90-sst2"]
        and "--eval-limit 64 " in lines[f"{root}/qat-sst2"]
    )
    assert "--limit 64 " in lines[f"{root}/validate-ptq-int8.json"]
    assert "--steps 2 " in lines[f"{root}/qat-sst2"]  # 100 x 0.01 = 1, raised to the least of 2
    assert "--samples 16 " in lines[f"{root}/ptq-int8"]  # 300 x 0.01 = 3, raised to the least of 16
    assert main(["run", "--recipe", "pipeline-small", "--dry-run", "--steps-scale", "2"]) == 0
    scaled_up = capsys.readouterr().out
    assert "--steps 800 " in scaled_up and "--save-steps 100 " in scaled_up
    assert "--eval-limit" not in scaled_up and "--limit" not in scaled_up  # only a rehearsal evaluates less
    for bad in ("0", "-1", "11"):
        assert main(["run", "--recipe", "pipeline-small", "--dry-run", "--steps-scale", bad]) == 2


def _stage(command, **options):
    from pruneofa.recipe_runner import Stage

    return Stage(name="s", command=command, options=options)


@pytest.mark.parametrize(
    ("steps", "save_steps", "factor", "expected"),
    [
        (400, 50, 0.01, (4, 2)),  # save every step (0.5 -> 1) would be 4 checkpoints for 4 steps
        (300, 50, 0.01, (3, 2)),
        (100, 25, 0.01, (2, 1)),  # 2 steps: a checkpoint at each is still two in all
        (1000, 200, 0.1, (100, 50)),  # a larger rehearsal: the scaled save_steps (20) is raised to half
        (400, 50, 0.5, (200, 100)),
        (400, 50, 2, (800, 100)),  # scaling up keeps the recipe's checkpoint rate
    ],
)
def test_a_rehearsal_saves_at_most_two_checkpoints(steps, save_steps, factor, expected):
    from pruneofa.recipe_runner import scaled_options

    options = scaled_options(_stage("prune", steps=steps, save_steps=save_steps), factor)
    assert (options["steps"], options["save_steps"]) == expected
    assert -(-options["steps"] // options["save_steps"]) <= (2 if factor < 1 else steps // save_steps)


def test_a_rehearsal_scales_every_evaluation_on_dev_data():
    from pruneofa.recipe_runner import REHEARSAL_EVAL, REHEARSAL_EVAL_LEAST, scaled_options

    # the whole dev set (no limit) counts as REHEARSAL_EVAL examples, scaled, at least the least
    assert (
        scaled_options(_stage("finetune", task="sst2", steps=300), 0.01)["eval_limit"] == REHEARSAL_EVAL_LEAST
    )
    assert scaled_options(_stage("qat", task="sst2", steps=100), 0.2)["eval_limit"] == REHEARSAL_EVAL * 0.2
    assert scaled_options(_stage("teacher", task="sst2", steps=300), 0.01)["eval_limit"] == 64
    assert scaled_options(_stage("validate", task="sst2"), 0.01)["limit"] == 64
    # a recipe's own limit is scaled, and never raised by the floor
    assert scaled_options(_stage("finetune", task="sst2", eval_limit=20000), 0.1)["eval_limit"] == 2000
    assert scaled_options(_stage("validate", task="sst2", limit=30), 0.01)["limit"] == 30
    # stages with no dev evaluation get no limit: the masked-LM teacher, prune, export, calibrate
    for command, options in [("teacher", {"corpus": "c"}), ("prune", {}), ("export", {}), ("calibrate", {})]:
        scaled = scaled_options(_stage(command, steps=300, **options), 0.01)
        assert "eval_limit" not in scaled and "limit" not in scaled
    # the full budget and a scaled-up one evaluate on what the recipe says
    assert "eval_limit" not in scaled_options(_stage("finetune", task="sst2", steps=300), 1)
    assert "limit" not in scaled_options(_stage("validate", task="sst2"), 2)
    assert scaled_options(_stage("finetune", task="sst2", eval_limit=500), 2)["eval_limit"] == 500


def test_a_scaled_run_says_so_in_its_summary_and_every_stage(tmp_path, base, sst2_dir):
    from pruneofa.recipe_runner import run_recipe

    recipe = load_run_recipe(_recipe(tmp_path, base, sst2_dir))
    ran = []
    run_recipe(recipe, lambda argv: ran.append(argv) or 0, lambda argv: None, steps_scale=0.5)
    assert ran[0][ran[0].index("--steps") + 1] == "2"  # 4 x 0.5
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_scale"] == 0.5 and all(s["steps_scale"] == 0.5 for s in summary["stages"])
    assert "Budget scaled by 0.5 (--steps-scale)" in (out / "summary.md").read_text()
