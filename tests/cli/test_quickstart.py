"""``pruneofa quickstart`` (the README's first command) on a tiny model standing in for the embedded one:
every step runs, the summary says what was measured, and the folder is written atomically."""

from __future__ import annotations

import json

import pytest

from pruneofa.cli import main


@pytest.fixture
def tiny_default(make_model, monkeypatch):
    from pruneofa.core import modelio

    folder = make_model("bert", "feature-extraction")
    monkeypatch.setattr(modelio, "default_model_path", lambda: folder)
    return folder


def test_quickstart_writes_the_side_by_side_summary(tiny_default, tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--output", str(out), "--batch", "1", "--duration", "0.3", "--sparsity", "0.9"]
    assert main([*args, "--quiet"]) == 0
    summary = (out / "summary.md").read_text()
    assert capsys.readouterr().out.strip() == summary.strip()
    facts = json.loads((out / "summary.json").read_text())
    assert facts["sparse_sparsity"] == pytest.approx(0.9, abs=0.01) and facts["dense_sparsity"] == 0
    assert 0 < facts["fidelity"]["cosine_mean"] <= 1 and facts["fidelity"]["sentences"] == 46
    assert facts["latency"]["1"]["dense"] > 0 and facts["latency"]["1"]["sparse"] > 0
    assert "one-shot magnitude pruning" in summary and "pruneofa run --recipe pipeline-small" in summary
    # sizes compared like with like: both models as the same kind of compressed archive
    assert 0 < facts["sparse_archive_mb"] < facts["dense_archive_mb"]
    assert f"| {facts['dense_archive_mb']:.1f} MB | {facts['sparse_archive_mb']:.1f} MB |" in summary
    assert (out / "summary.png").stat().st_size > 1000
    assert {p.name for p in out.iterdir()} >= {"dense", "sparse", "benchmark", "summary.md"}
    # a second run refuses to overwrite without --overwrite, and keeps the first
    assert main([*args, "--quiet"]) == 2
    assert (out / "summary.md").read_text() == summary


def test_summary_chart_gives_each_bar_its_figure():
    import matplotlib.pyplot as plt

    from pruneofa.quickstart import QuickstartOptions, summary_figure

    facts = {
        "cpu": "AMD EPYC (test)",
        "latency": {"1": {"dense": 255.5, "sparse": 78.6, "sparse_off": 227.3}},
        "dense_archive_mb": 82.9,
        "sparse_archive_mb": 49.9,
        "fidelity": {"cosine_mean": 0.226, "neighbour_agreement": 0.26},
    }
    fig = summary_figure(QuickstartOptions(batches=[1]), facts)
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert texts == [["255.5 ms", "78.6 ms", "227.3 ms"], ["82.9 MB", "49.9 MB"], ["0.23", "0.26"]]
    fig.canvas.draw()
    for ax in fig.axes:  # every figure inside its panel
        panel = ax.get_window_extent()
        assert all(t.get_window_extent().x1 <= panel.x1 for t in ax.texts)
    plt.close(fig)
