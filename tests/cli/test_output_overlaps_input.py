"""``--output`` may not be, contain or lie inside an input: with ``--overwrite`` the atomic swap used to
replace the input's folder (and everything beside it) by the new output. Every command that writes is
tried on the layout of the report: ``dl/exports/m1`` is read, ``dl/exports`` is the output, and the
sibling ``m2`` and a note must survive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pruneofa.cli import main

BUDGET = ["--steps", "2", "--batch-size", "2", "--seq-len", "16"]


@pytest.fixture
def layout(tmp_path, make_model):
    exports = tmp_path / "dl" / "exports"
    exports.mkdir(parents=True)
    model = make_model("bert", "text-classification")
    shutil.copytree(model, exports / "m1")
    shutil.copytree(model, exports / "m2")
    (exports / "note.txt").write_text("keep me\n")
    return exports


def _survived(exports: Path) -> None:
    assert (exports / "m1" / "config.json").is_file() and (exports / "m1" / "model.safetensors").is_file()
    assert (exports / "m2" / "config.json").is_file()
    assert (exports / "note.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in exports.iterdir()) == ["m1", "m2", "note.txt"]


def _refused(capsys, argv: list[str], relation: str = "contains the input") -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert relation in err[-1] and len(err[-1].splitlines()) == 1, err[-1]


def test_export_output_containing_its_model(layout, capsys):
    _refused(
        capsys, ["export", str(layout / "m1"), "--target", "onnx", "--output", str(layout), "--overwrite"]
    )
    _survived(layout)


@pytest.mark.parametrize(
    ("output", "relation"),
    [("m1", "is the input"), ("m1/sub", "lies inside the input"), ("link", "is the input")],
)
def test_export_output_that_is_or_lies_inside_its_model(layout, capsys, output, relation):
    (layout / "link").symlink_to(layout / "m1", target_is_directory=True)
    argv = ["export", str(layout / "m1"), "--target", "onnx", "--output", str(layout / output), "--overwrite"]
    _refused(capsys, argv, relation)
    (layout / "link").unlink()
    _survived(layout)


def test_export_through_a_linked_parent(layout, tmp_path, capsys):
    """The output names the input's parent through a symbolic link: still refused (paths are resolved)."""
    alias = tmp_path / "alias"
    alias.symlink_to(layout, target_is_directory=True)
    _refused(
        capsys, ["export", str(layout / "m1"), "--target", "onnx", "--output", str(alias), "--overwrite"]
    )
    _survived(layout)


def test_teacher_output_containing_its_model(layout, sst2_dir, capsys):
    argv = ["teacher", str(layout / "m1"), "--task", "sst2", "--data", str(sst2_dir)]
    _refused(capsys, [*argv, "--output", str(layout), "--overwrite", *BUDGET])
    _survived(layout)


def test_teacher_output_containing_its_data(layout, sst2_dir, capsys):
    data = layout / "m2" / "sst2"
    shutil.copytree(sst2_dir, data)
    argv = ["teacher", str(layout / "m1"), "--task", "sst2", "--data", str(data)]
    _refused(capsys, [*argv, "--output", str(layout / "m2"), "--overwrite", *BUDGET])
    assert (data / "train.tsv").is_file() or any(data.iterdir())


def test_finetune_output_containing_its_teacher(layout, sst2_dir, make_model, capsys):
    base = make_model("bert", "feature-extraction")
    argv = ["finetune", str(base), "--task", "sst2", "--data", str(sst2_dir), "--teacher", str(layout / "m1")]
    _refused(capsys, [*argv, "--output", str(layout), "--overwrite", *BUDGET])
    _survived(layout)


def test_prune_output_containing_its_model(layout, corpus, capsys):
    argv = ["prune", str(layout / "m1"), "--teacher", str(layout / "m2"), "--corpus", str(corpus)]
    _refused(capsys, [*argv, "--recipe", "pruneofa-90", "--output", str(layout), "--overwrite", *BUDGET])
    _survived(layout)


def test_qat_output_containing_its_model(layout, sst2_dir, capsys):
    argv = ["qat", str(layout / "m1"), "--task", "sst2", "--data", str(sst2_dir), "--no-export"]
    _refused(capsys, [*argv, "--output", str(layout), "--overwrite", *BUDGET])
    _survived(layout)


def test_qat_export_folder_inside_its_model(layout, sst2_dir, capsys):
    """``qat`` checks OUTPUT-TARGET before training: here it would be the model folder itself."""
    argv = ["qat", str(layout / "m1"), "--task", "sst2", "--data", str(sst2_dir), "--export", "openvino"]
    m1_openvino = layout / "m1-openvino"
    m1_openvino.symlink_to(layout / "m1", target_is_directory=True)
    _refused(capsys, [*argv, "--output", str(layout / "m1"), "--overwrite", *BUDGET], "is the input")
    m1_openvino.unlink()
    _survived(layout)


def test_run_output_root_containing_the_recipe_model(layout, sst2_dir, tmp_path, capsys):
    recipe = {
        "name": "overlap",
        "model": str(layout / "m1"),
        "data_root": str(sst2_dir.parent),
        "output": str(tmp_path / "unused"),
        "stages": [
            {"name": "export", "command": "export", "model": "{model}", "options": {"target": "onnx"}}
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    _refused(capsys, ["run", "--recipe", str(path), "--output", str(layout)])
    _survived(layout)


def test_quickstart_output_containing_the_default_model(layout, monkeypatch, capsys):
    from pruneofa.core import modelio

    monkeypatch.setattr(modelio, "default_model_path", lambda: layout / "m1")
    _refused(capsys, ["quickstart", "--output", str(layout), "--overwrite", "--quiet"])
    _survived(layout)
