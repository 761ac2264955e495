"""Shared training fixtures: the teacher → prune → finetune chain run once on a tiny BERT."""

from __future__ import annotations

import pytest

from pruneofa.cli import main

BUDGET = ["--steps", "8", "--batch-size", "4", "--seq-len", "32", "--logging-steps", "2", "--save-steps", "4"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from exporter.parity import load_parity_samples

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(load_parity_samples()["sentences"] * 4) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, make_model, corpus, sst2_dir):
    """Run the three commands once; return their output folders."""
    root = tmp_path_factory.mktemp("runs")
    base = make_model("bert", "feature-extraction")  # a BertModel without an MLM head, like MiniLM
    assert main(["teacher", str(base), "--corpus", str(corpus), "--output", str(root / "mlm"), *BUDGET]) == 0
    assert (
        main(
            [
                "teacher",
                str(base),
                "--task",
                "sst2",
                "--data",
                str(sst2_dir),
                "--output",
                str(root / "sst2-teacher"),
                *BUDGET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "prune",
                str(root / "mlm"),
                "--teacher",
                str(root / "mlm"),
                "--corpus",
                str(corpus),
                "--recipe",
                "pruneofa-90",
                "--output",
                str(root / "sparse"),
                *BUDGET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                str(root / "sparse"),
                "--task",
                "sst2",
                "--data",
                str(sst2_dir),
                "--teacher",
                str(root / "sst2-teacher"),
                "--output",
                str(root / "sparse-sst2"),
                *BUDGET,
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="session")
def budget() -> list[str]:
    """The tiny training budget every command test runs with."""
    return list(BUDGET)
