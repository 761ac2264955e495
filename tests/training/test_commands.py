"""teacher → prune → finetune end to end on a tiny BERT (a few steps each), through the CLI."""

from __future__ import annotations

import pytest

from pruneofa.cli import main
from pruneofa.core.manifest import read_manifest


def test_mlm_teacher_adds_a_head_and_records_its_curve(pipeline):
    manifest = read_manifest(pipeline / "mlm")
    assert manifest.stage == "teacher" and manifest.training.kind == "mlm-teacher"
    assert manifest.metrics["mlm_head_added"] == 1.0 and manifest.training.steps == 8
    assert manifest.metrics["head_warmup_steps"] == 2.0  # 20 % of 8 steps: the new head alone first
    assert manifest.training.loss_curve and all(e["loss"] > 0 for e in manifest.training.loss_curve)
    assert not any(p.name.startswith(".mlm.checkpoints") for p in pipeline.iterdir())  # cleaned after success


def test_prune_reaches_the_recipe_sparsity_in_every_layer(pipeline):
    import transformers

    manifest = read_manifest(pipeline / "sparse")
    assert manifest.stage == "prune" and manifest.training.recipe == "pruneofa-90"
    assert [e.stage for e in manifest.lineage] == ["teacher"]
    layers = manifest.training.layer_sparsity
    assert len(layers) == 13  # 2 layers × 6 encoder Linear + the pre-trained pooler, carried and pruned
    assert all(abs(v - 0.9) < 1 / 512 for v in layers.values()), layers
    assert any("kd_loss" in e for e in manifest.training.loss_curve)
    assert (pipeline / "sparse" / "recipe.yaml").is_file()
    model = transformers.AutoModelForMaskedLM.from_pretrained(
        pipeline / "sparse"
    )  # plain weights, masks baked in
    weight = model.bert.encoder.layer[0].intermediate.dense.weight
    assert float((weight == 0).float().mean()) == pytest.approx(0.9, abs=1 / 512)


def test_finetune_keeps_the_pattern_and_records_the_dev_metric(pipeline):
    import transformers

    manifest = read_manifest(pipeline / "sparse-sst2")
    assert manifest.stage == "finetune" and manifest.training.teacher.endswith("sst2-teacher")
    assert "accuracy" in manifest.metrics and 0 <= manifest.metrics["accuracy"] <= 100
    assert manifest.training.learning_rate == 2e-4  # sparse transfer's default (a dense teacher keeps 5e-5)
    assert read_manifest(pipeline / "sst2-teacher").training.learning_rate == 5e-5
    sparse = transformers.AutoModelForMaskedLM.from_pretrained(pipeline / "sparse")
    tuned = transformers.AutoModelForSequenceClassification.from_pretrained(pipeline / "sparse-sst2")
    before = sparse.bert.encoder.layer[1].attention.self.query.weight == 0
    after = tuned.bert.encoder.layer[1].attention.self.query.weight == 0
    assert bool((before & ~after).sum() == 0)  # every pruned weight is still zero
    assert all(abs(v - 0.9) < 1 / 512 for k, v in manifest.training.layer_sparsity.items() if ".layer." in k)


def test_bad_training_input(tmp_path, make_model, corpus, capsys):
    base = str(make_model("bert", "feature-extraction"))
    cases = [
        (["teacher", base, "--output", str(tmp_path / "a")], "either --corpus"),
        (["teacher", base, "--task", "sst2", "--output", str(tmp_path / "a")], "--task needs --data"),
        (
            [
                "prune",
                base,
                "--teacher",
                base,
                "--corpus",
                str(corpus),
                "--recipe",
                "nope",
                "--output",
                str(tmp_path / "a"),
            ],
            "built-in recipe",
        ),
        (
            [
                "prune",
                base,
                "--teacher",
                base,
                "--corpus",
                str(corpus),
                "--recipe",
                "pruneofa-90",
                "--output",
                str(tmp_path / "a"),
            ],
            "lacks",
        ),
        (
            ["teacher", base, "--corpus", str(corpus), "--steps", "0", "--output", str(tmp_path / "a")],
            "--steps",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1], argv
        assert not (tmp_path / "a").exists()


def test_squad_teacher_and_sparse_transfer(pipeline, make_model, squad_file):
    base = str(make_model("bert", "feature-extraction"))
    qa = [
        "--task",
        "squad",
        "--data",
        str(squad_file),
        "--seq-len",
        "64",
        "--steps",
        "4",
        "--batch-size",
        "4",
    ]
    assert main(["teacher", base, *qa, "--output", str(pipeline / "squad-teacher")]) == 0
    assert (
        main(
            [
                "finetune",
                str(pipeline / "sparse"),
                *qa,
                "--teacher",
                str(pipeline / "squad-teacher"),
                "--output",
                str(pipeline / "sparse-squad"),
            ]
        )
        == 0
    )
    manifest = read_manifest(pipeline / "sparse-squad")
    assert set(manifest.metrics) == {"exact_match", "f1"} and manifest.training.task == "squad"
    assert all(abs(v - 0.9) < 1 / 512 for k, v in manifest.training.layer_sparsity.items() if ".layer." in k)


def test_torchrun_with_two_cpu_processes_trains_one_model(pipeline, corpus, tmp_path):
    """The same command under torchrun: both ranks train (data split between them), one writes."""
    import math
    import os
    import subprocess
    import sys
    from pathlib import Path

    from transformers import AutoTokenizer

    from pruneofa.training.datasets import mlm_blocks

    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc_per_node", "2", "-m", "pruneofa.cli", "prune", str(pipeline / "mlm")]
    command += ["--teacher", str(pipeline / "mlm"), "--corpus", str(corpus), "--recipe", "pruneofa-90"]
    command += [
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--logging-steps",
        "6",
        "--output",
        str(out),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("sparse model written") == 1  # one rank writes
    assert "the same sparsity pattern on all 2 ranks" in done.stdout  # masks compared across the ranks
    manifest = read_manifest(out)
    blocks = len(mlm_blocks(str(corpus), AutoTokenizer.from_pretrained(pipeline / "mlm"), seq_len=32))
    epoch = manifest.training.loss_curve[-1]["epoch"]
    assert epoch == pytest.approx(6 / math.ceil(blocks / 2 / 4))  # each rank sees half the blocks
    assert all(abs(v - 0.9) < 1 / 512 for k, v in manifest.training.layer_sparsity.items() if ".layer." in k)
