"""``pruneofa run`` through every stage kind of the built-in ``pipeline-small`` recipe (teacher on a corpus
and on a task, prune, finetune, qat with its INT8 export, export, calibrate, validate) on a tiny model,
interrupted inside the prune stage after its first checkpoint, then resumed: the resumed run skips what
was finished, resumes prune from its checkpoint and ends with exactly the models, masks and metrics of an
uninterrupted run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from pruneofa.cli import main
from pruneofa.recipe_runner import load_run_recipe

# Each training stage: 4 steps, a checkpoint every 2, tiny batches (the shape of the recipe, not its size).
TINY = {"steps": 4, "batch_size": 4, "seq_len": 32, "save_steps": 2, "logging_steps": 2}
TRAINING = {"teacher", "prune", "finetune", "qat"}


def _tiny_recipe(tmp_path: Path, base: Path, data_root: Path, output: Path) -> Path:
    """pipeline-small with its model, data root and output replaced and every budget made tiny; every
    stage, reference and option name is the built-in recipe's own."""
    recipe = yaml.safe_load(
        yaml.safe_dump(load_run_recipe("pipeline-small").model_dump(exclude={"base_dir"}))
    )
    recipe.update(model=str(base), data_root=str(data_root), output=str(output))
    kinds = set()
    for stage in recipe["stages"]:
        kinds.add(stage["command"])
        options = stage["options"]
        if stage["command"] in TRAINING:
            options.update(TINY)
            options.pop("train_limit", None)
        if stage["command"] == "calibrate":
            options["samples"] = 16
    assert kinds == {"teacher", "prune", "finetune", "qat", "export", "calibrate", "validate"}
    path = tmp_path / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, sst2_dir, corpus) -> Path:
    """The layout pipeline-small reads under a data root (its corpus mix and glue/SST-2), tiny files."""
    root = tmp_path_factory.mktemp("data")
    for part in ("wikitext-2-raw/wiki.test.raw", "gutenberg/book.txt", "tinyshakespeare/input.txt"):
        (root / "corpus" / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus, root / "corpus" / part)
    shutil.copytree(sst2_dir, root / "glue" / "SST-2")
    return root


@pytest.fixture(scope="module")
def base(make_model) -> Path:
    return make_model("bert", "feature-extraction")  # a BertModel without an MLM head, like MiniLM


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, base, data_root) -> tuple[Path, int]:
    """The reference run's output and exit code: 1 when a validate gate (continue_on_failure) failed,
    which tiny random models may do; every other stage must succeed."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    out = tmp / "runs"
    code = main(["run", "--recipe", str(_tiny_recipe(tmp, base, data_root, out))])
    assert code in (0, 1)
    return out, code


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no safetensors in {folder}"
    out: dict[str, np.ndarray] = {}
    for file in files:
        out.update({f"{file.name}:{k}": v for k, v in load_file(str(file)).items()})
    return out


def test_every_stage_kind_runs_and_an_interrupted_prune_resumes_to_the_same_result(
    uninterrupted, base, data_root, tmp_path, monkeypatch, capsys
):
    import transformers

    uninterrupted, expected_code = uninterrupted
    summary = json.loads((uninterrupted / "summary.json").read_text(encoding="utf-8"))
    statuses = {s["name"]: s["status"] for s in summary["stages"]}
    gates = {name for name in statuses if name.startswith("validate-")}
    assert {statuses[n] for n in statuses.keys() - gates} == {"done"}, statuses
    assert all((uninterrupted / f"{gate}.json").is_file() for gate in gates)  # a gate may fail; it reports

    out = tmp_path / "runs"
    recipe = _tiny_recipe(tmp_path, base, data_root, out)
    original = transformers.Trainer.training_step
    interrupted_at: list[str] = []

    def stop_in_prune_after_its_first_checkpoint(self, *args, **kwargs):
        if ".pruned-90.checkpoints" in str(self.args.output_dir) and self.state.global_step == 3:
            interrupted_at.append(str(self.args.output_dir))
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", stop_in_prune_after_its_first_checkpoint)
    assert main(["run", "--recipe", str(recipe)]) == 130
    assert interrupted_at, "the prune stage never reached step 3"
    assert (out / "teacher-mlm").is_dir() and (out / "teacher-sst2").is_dir()
    assert not (out / "pruned-90").exists() and (out / ".pruned-90.checkpoints" / "checkpoint-2").is_dir()
    stopped = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [s["status"] for s in stopped["stages"]][:3] == ["done", "done", "failed"]
    capsys.readouterr()

    monkeypatch.setattr(transformers.Trainer, "training_step", original)
    assert main(["run", "--recipe", str(recipe)]) == expected_code
    err = capsys.readouterr().err
    assert "teacher-mlm: output complete, skipped" in err and "teacher-sst2: output complete, skipped" in err
    assert "resuming from" in err
    assert not (out / ".pruned-90.checkpoints").exists()

    # The same result as the uninterrupted run: every trained model tensor for tensor (masks included:
    # a pruned weight is zero in both or in neither), and the same metrics in every validate report.
    for stage in ("pruned-90", "pruned-90-sst2", "qat-sst2"):
        a, b = _tensors(uninterrupted / stage), _tensors(out / stage)
        assert a.keys() == b.keys(), stage
        for name in a:
            assert np.array_equal(a[name] == 0, b[name] == 0), f"{stage} {name}: different zeros"
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=f"{stage} {name}")
    for stage in ("validate-teacher", "validate-qat-int8", "validate-ptq-int8"):
        a = json.loads((uninterrupted / f"{stage}.json").read_text(encoding="utf-8"))
        b = json.loads((out / f"{stage}.json").read_text(encoding="utf-8"))
        assert a["candidate"]["metrics"] == b["candidate"]["metrics"], stage
        assert a["reference"]["metrics"] == b["reference"]["metrics"], stage
