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
