"""``pruneofa benchmark`` on tiny exported models: candidates and peers measured in one run, ratios, the
three outputs, a peer that cannot be built reported instead of failing, bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from pruneofa.cli import main
from pruneofa.core.errors import InputError
from pruneofa.deploy.benchmarking import benchmark_model
from pruneofa.deploy.benchmarking.peers import source_model_of
from pruneofa.deploy.config import benchmark_config


def test_candidates_and_peers_in_one_run(export_once, calibrate_once, make_model, tmp_path, capsys):
    fp32 = export_once("bert", "text-classification", "unstructured90")["onnx"].output
    int8 = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    assert source_model_of(int8) == str(make_model("bert", "text-classification", "unstructured90").resolve())
    out = tmp_path / "bench"
    code = main(
        ["benchmark", str(fp32), str(int8), "--vs", "torch,onnxruntime,optimum-intel", "--batch", "1,4"]
        + [
            "--seq",
            "24",
            "--duration",
            "0.4",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--output",
            str(out),
            "--sparse-kernels",
            "off",  # the peers are this test's subject; tests/deploy/test_sparse_kernels_at_load.py has the kernels
            "--quiet",
        ]
    )
    table = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "benchmark.json").read_text())
    labels = [v["label"] for v in report["variants"]]
    assert labels[2:] == ["PyTorch FP32 eager", "ONNX Runtime FP32", "optimum-intel OpenVINO INT8"]
    for variant in report["variants"]:
        assert variant["available"], variant["reason"]
        assert [m["batch"] for m in variant["results"]] == [1, 4]
        for m in variant["results"]:
            assert 0 < m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"] and m["throughput_seq_s"] > 0
            assert m["rounds"] == 2 and m["iterations"] >= 6
        assert variant["load_memory_mb"] is not None
    candidate = report["variants"][1]
    assert candidate["weights"] == "INT8" and "no OpenVINO sparse kernel" in candidate["settings"]
    # the OpenVINO candidate runs on static-shape copies with its kernels off too (like with like)
    assert "each batch runs on a static-shape copy" in candidate["sparse_kernels"]
    assert "static-shape copy" not in report["variants"][0]["sparse_kernels"]  # ONNX Runtime: none
    torch_p50 = report["variants"][2]["results"][0]["p50_ms"]
    assert candidate["speedup"]["1"]["PyTorch FP32 eager"] == pytest.approx(
        torch_p50 / candidate["results"][0]["p50_ms"], rel=1e-2
    )
    assert (
        (out / "pruneofa.json").is_file()
        and report["seq"] == 24
        and report["fastest"]["1"] in labels
        and "fastest is" in report["statement"]
    )
    assert report["isa"] in report["statement"]
    assert "| vs PyTorch FP32 eager |" in table
    assert (out / "benchmark.md").read_text().strip() in table  # (NNCF may print progress bars before it)
    with Image.open(out / "benchmark.png") as chart:
        assert chart.size[0] > 600 and chart.size[1] > 200


def test_a_peer_that_cannot_be_built_is_reported(export_once, tmp_path):
    folder = tmp_path / "moved"
    shutil.copytree(export_once("bert", "text-classification")["onnx"].output, folder)
    manifest = json.loads((folder / "pruneofa.json").read_text())
    manifest["source"]["model"] = str(tmp_path / "gone")  # the source model no longer exists
    (folder / "pruneofa.json").write_text(json.dumps(manifest))
    report = benchmark_model(
        folder,
        benchmark_config(
            vs=["torch"], batches=[2], seq=16, duration=0.2, repeats=1, warmup=1, output=tmp_path / "o"
        ),
        quiet=True,
    )
    peer = report.variants[1]
    assert not peer.available and "could not be built" in peer.reason and not peer.results
    assert report.variants[0].results and "Not measured: PyTorch FP32 eager" in report.statement
    assert "not measured" in (tmp_path / "o" / "benchmark.md").read_text()


def test_bad_benchmark_input(export_once, tmp_path, capsys):
    assert main(["benchmark", str(tmp_path), "--output", str(tmp_path / "x")]) == 2
    assert "not an exported folder" in capsys.readouterr().err
    assert main(["benchmark", str(tmp_path), "--batch", "0"]) == 2
    assert "invalid --batch: batch sizes must be between 1 and 4096" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["benchmark", str(tmp_path), "--vs", "tensorrt"])
    with pytest.raises(InputError, match="--duration"):
        benchmark_config(duration=-1)
    folder = export_once("bert", "text-classification")["onnx"].output
    other = export_once("bert", "question-answering")["onnx"].output
    with pytest.raises(InputError, match="of one task together"):
        benchmark_model([folder, other], benchmark_config(vs=[], output=tmp_path / "y"), quiet=True)


def test_a_busy_machine_is_reported():
    from pruneofa.deploy.benchmarking.measurement import busy_machine

    assert busy_machine(2, load=0.3) is None
    warning = busy_machine(2, load=1.6)
    assert "busy" in warning and "1.6 on 2 cores" in warning


def test_folders_of_the_same_name_get_labels_that_tell_them_apart(tmp_path):
    from pruneofa.deploy.benchmarking.report import display_names

    a, b, c = tmp_path / "run-90" / "sparse", tmp_path / "run-85" / "sparse", tmp_path / "run-90" / "dense"
    assert display_names([a, b, c]) == {a: "run-90/sparse", b: "run-85/sparse", c: "dense"}
    x, y = tmp_path / "one" / "m" / "sparse", tmp_path / "two" / "m" / "sparse"
    assert display_names([x, y]) == {x: "one/m/sparse", y: "two/m/sparse"}


def test_the_estimate_counts_peers_compiles_warm_up_and_rounds():
    from pruneofa.deploy.benchmarking.plan import VariantCost, estimate_line, peer_build_seconds, plan_phases

    fast = [VariantCost("dense", 2.0), VariantCost("sparse", 1.0, static_compile_s=5.0)]
    phases = plan_phases(
        fast, ["torch"], None, millions=22.0, batches=[1, 16], duration=4.0, repeats=2, warmup=3
    )
    names = [p.name for p in phases]
    assert names == [
        "building peer torch",
        "batch 1: static-shape compiles",
        "batch 1: warm-up",
        "batch 1: 2 rounds",
        "batch 16: static-shape compiles",
        "batch 16: warm-up",
        "batch 16: 2 rounds",
        "writing the report",
    ]
    by_name = {p.name: p.estimate_s for p in phases}
    assert by_name["building peer torch"] == pytest.approx(peer_build_seconds("torch", 22.0))
    assert by_name["batch 1: static-shape compiles"] == pytest.approx(5.0)
    # three variants (two candidates, one peer) × 4 s each: the calls are short enough for the duration to rule
    assert by_name["batch 1: 2 rounds"] == pytest.approx(12.0)
    # warm-up: 3 calls each; the peer's call is guessed as 3× the slowest candidate's (2 ms), scaled by batch
    assert by_name["batch 16: warm-up"] == pytest.approx(3 * 16 * (2.0 + 1.0 + 6.0) / 1000)
    slow = plan_phases(
        [VariantCost("big", 1000.0)], [], [], millions=1.0, batches=[4], duration=1.0, repeats=2, warmup=0
    )
    assert {p.name: p.estimate_s for p in slow}["batch 4: 2 rounds"] == pytest.approx(
        2 * 3 * 4.0
    )  # 3 calls a round
    line = estimate_line(phases, variants=3, batches=2, duration=4.0, repeats=2)
    total = sum(by_name.values())
    assert line.startswith("estimated time left: about ")
    assert "3 variants × 2 batch sizes × 4 s" in line and "building peers" in line and "static-shape" in line
    from pruneofa.deploy.benchmarking.plan import format_duration

    assert f"about {format_duration(total)} (" in line


def test_phase_progress_says_elapsed_and_remaining(capsys):
    from pruneofa.deploy.benchmarking.plan import Phase, PhaseProgress

    now = [100.0]
    progress = PhaseProgress(clock=lambda: now[0])
    progress.set_plan(
        [Phase("building peer torch", 30.0, "peer"), Phase("batch 1: 3 rounds", 60.0, "rounds")]
    )
    assert progress.remaining_s() == pytest.approx(90.0)
    progress.start("building peer torch")
    now[0] = 110.0
    assert progress.remaining_s() == pytest.approx(80.0)
    now[0] = 150.0  # the peer took longer than estimated: its share of the estimate is used up, no less
    assert progress.remaining_s() == pytest.approx(60.0)
    progress.start("batch 1: 3 rounds")
    now[0] = 170.0
    progress.note("batch 1: round 2/3")
    progress.close()
    err = capsys.readouterr().err
    assert "building peer torch (elapsed 0s, about 1m30s left)" in err
    early = PhaseProgress(quiet=True, clock=lambda: now[0])
    early.set_plan([Phase("building peer torch", 30.0, "peer"), Phase("batch 1: 3 rounds", 60.0, "rounds")])
    early.start("building peer torch")
    now[0] += 10.0
    assert early.remaining_s() == pytest.approx(80.0)
    early.finish()  # done sooner than estimated: nothing of its estimate is left
    assert early.remaining_s() == pytest.approx(60.0)
    assert "batch 1: 3 rounds (elapsed 50s, about 1m00s left)" in err
    assert "[  70.0s] batch 1: round 2/3 (elapsed 1m10s, about 40s left)" in err


def test_phase_progress_draws_a_bar_in_a_terminal(capsys):
    from pruneofa.deploy.benchmarking.plan import Phase, PhaseProgress

    now = [0.0]
    progress = PhaseProgress(bar=True, clock=lambda: now[0])
    progress.set_plan(
        [Phase("batch 1: warm-up", 10.0, "warm-up"), Phase("batch 1: 3 rounds", 30.0, "rounds")]
    )
    progress.start("batch 1: warm-up")
    now[0] = 10.0
    progress.start("batch 1: 3 rounds")
    now[0] = 20.0
    progress.note("batch 1: round 1/3")
    progress.close()
    err = capsys.readouterr().err
    assert "|" in err and "50%, elapsed 20s, about 20s left" in err  # the bar: 20 of 40 estimated seconds
    assert "[  20.0s] batch 1: round 1/3 (elapsed 20s, about 20s left)" in err


def test_a_run_prints_its_estimate_before_measuring(export_once, tmp_path, capsys):
    folder = export_once("bert", "text-classification")["openvino"].output
    args = ["benchmark", str(folder), "--vs", "none", "--batch", "1,2", "--seq", "16", "--duration", "0.2"]
    assert main([*args, "--repeats", "2", "--warmup", "1", "--output", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    estimate = err.index("estimated time left: about ")
    assert "1 variant × 2 batch sizes × 0.2 s" in err
    assert estimate < err.index("batch 1: warm-up (elapsed") < err.index("batch 2: 2 rounds (elapsed")
    assert "batch 2: round 2/2, 0.1 s per variant (elapsed" in err and "left)" in err


def test_duration_help_says_what_it_counts(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timed seconds per variant and batch size, split over the rounds" in text
    assert "prints its estimate of the total before measuring" in text
    with pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timed benchmark seconds per variant and batch size, over 3 rounds (exporting, pruning" in text


def _chart_report():
    from pruneofa.deploy.benchmarking.measurement import Measurement
    from pruneofa.deploy.benchmarking.report import BenchmarkReport, VariantReport

    def variant(label, role, p50):
        results = [
            Measurement(
                batch=b,
                p50_ms=p50 * b,
                p90_ms=p50 * b * 1.1,
                p99_ms=p50 * b * 1.3,
                throughput_seq_s=1.0,
                iterations=3,
                rounds=3,
            )
            for b in (1, 16)
        ]
        return VariantReport(label=label, role=role, runtime="openvino", weights="FP32", results=results)

    variants = [
        variant("run-90/sparse (openvino FP32 + sparse kernels, a long folder name)", "candidate", 4.0),
        variant("run-90/sparse (openvino FP32, sparse kernels off)", "candidate", 9.0),
        variant("PyTorch FP32 eager", "peer", 22.0),
        variant("optimum-intel OpenVINO INT8", "peer", 4.5),
    ]
    return BenchmarkReport(
        created_at="now", cpu="AMD EPYC (test)", isa="avx2", threads=2, seq=128, batches=[1, 16],
        duration_s=3, repeats=3, source_model="m", variants=variants, fastest={}, statement="",
        command=[], versions={}, wall_time_s=1.0,
    )  # fmt: skip


def test_the_chart_tells_candidates_from_peers_and_cuts_nothing_off(tmp_path):
    import matplotlib.pyplot as plt

    from pruneofa.deploy.benchmarking.report import chart_figure, write_chart

    report = _chart_report()
    fig = chart_figure(report)
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert legend == ["candidates (your folders)", "peers (built from the source model)", "p99"]
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 4 and bars[0].get_facecolor() != bars[2].get_facecolor()
    assert not bars[0].get_hatch() and bars[2].get_hatch()  # hatched peers read apart in grey print too
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    for text in [*ax.get_yticklabels(), *fig.legends[0].get_texts(), ax.title, ax.xaxis.label]:
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, text
    plt.close(fig)
    write_chart(report, tmp_path / "benchmark.png")
    with Image.open(tmp_path / "benchmark.png") as chart:
        assert chart.size[0] > 1000


def test_later_batch_sizes_are_planned_from_measured_medians():
    from pruneofa.deploy.benchmarking.measurement import Measurement
    from pruneofa.deploy.benchmarking.peers import Variant
    from pruneofa.deploy.benchmarking.plan import VariantCost, measured_costs
    from pruneofa.deploy.benchmarking.report import VariantReport

    report = VariantReport(label="sparse", role="candidate", runtime="openvino", weights="FP32")
    report.results.append(
        Measurement(
            batch=4, p50_ms=40.0, p90_ms=41.0, p99_ms=42.0, throughput_seq_s=1, iterations=3, rounds=1
        )
    )
    unmeasured = VariantReport(label="failed", role="peer", runtime="pytorch", weights="FP32")
    costs = measured_costs(
        [Variant(report), Variant(unmeasured)], 4, [VariantCost("sparse", 99.0, static_compile_s=2.0)]
    )
    assert costs == [VariantCost("sparse", 10.0, 2.0)]  # 40 ms for 4 sequences; the compile time kept


def test_bf16_inference_runs_every_openvino_variant_at_bf16_or_is_refused(
    export_once, tmp_path, capsys, monkeypatch
):
    """--precision bf16: every OpenVINO variant compiles with bf16 (the report says so) where the CPU has
    native bf16; elsewhere the command stops in one line before loading anything."""
    import dataclasses

    from pruneofa.core.cpu import detect_cpu
    from pruneofa.deploy.benchmarking import benchmark as module

    folder = export_once("bert", "text-classification")["openvino"].output
    args = ["benchmark", str(folder), "--vs", "none", "--batch", "1", "--seq", "16", "--duration", "0.1"]
    args += ["--repeats", "1", "--warmup", "1", "--precision", "bf16"]
    cpu = detect_cpu()
    if cpu.has_native_bf16:
        assert main([*args, "--output", str(tmp_path / "b")]) == 0
        report = json.loads((tmp_path / "b" / "benchmark.json").read_text())
        assert report["precision"] == "bf16"
        assert all(
            "bf16 inference" in v["settings"] for v in report["variants"] if v["runtime"] == "openvino"
        )
        assert "OpenVINO bf16 inference" in (tmp_path / "b" / "benchmark.md").read_text()
    no_bf16 = dataclasses.replace(cpu, flags=cpu.flags - {"avx512_bf16", "amx_bf16"})
    monkeypatch.setattr(module, "detect_cpu", lambda: no_bf16)
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "c")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "has no native bf16" in errors[0], errors
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit):
        main([*args[:-1], "fp16"])
