"""CPU detection on fixed /proc/cpuinfo samples, the compile settings chosen from it, and the sparse-kernel
decision: requested only with AMX, INT8 weights and enough zeros in 64-aligned matrices; verified through
OpenVINO's performance counters, which on this (non-AMX) machine show that no sparse kernel ran."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pruneofa.core.cpu import detect_cpu
from pruneofa.core.manifest import SparsityReport, TensorSparsity
from pruneofa.deploy.settings import (
    MIN_SPARSE_RATE,
    CompileSettings,
    SparseDecision,
    choose_settings,
    count_sparse_kernels,
    sparse_decision,
)

SAMPLES = Path(__file__).parent / "cpuinfo"


def _cpu(name: str, cores: int | None = None):
    cpu = detect_cpu(SAMPLES / name)
    return dataclasses.replace(cpu, cores=cores if cores is not None else cpu.physical_cores)


def test_cpuinfo_samples_are_read():
    epyc = detect_cpu(SAMPLES / "avx2_epyc.txt")
    assert epyc.model == "AMD EPYC 7B13" and epyc.known
    assert epyc.physical_cores == 2 and epyc.logical_cpus == 2
    assert "avx2" in epyc.flags and not (epyc.has_avx512 or epyc.has_vnni or epyc.has_amx)
    assert epyc.isa == "AVX2 (no VNNI, no AVX-512, no AMX)" and epyc.int8_saturation_risk

    cascade = detect_cpu(SAMPLES / "avx512_vnni_cascadelake.txt")
    assert cascade.physical_cores == 8 and cascade.logical_cpus == 16  # 2 sockets × 4 cores × 2 threads
    assert cascade.has_avx512 and cascade.has_vnni and not cascade.has_amx
    assert cascade.isa == "AVX-512 VNNI" and not cascade.int8_saturation_risk

    sapphire = detect_cpu(SAMPLES / "amx_sapphirerapids.txt")
    assert sapphire.physical_cores == 8 and sapphire.logical_cpus == 16
    assert sapphire.has_amx and sapphire.has_vnni and {"amx_tile", "amx_bf16"} <= sapphire.flags
    assert sapphire.isa == "AMX"


def test_this_machine_is_described_honestly():
    cpu = detect_cpu()
    settings = choose_settings(cpu, "openvino", weight_format="int8")
    if not cpu.has_amx:
        assert not settings.sparse.enabled and "needs AMX" in settings.sparse.reason
        assert cpu.isa in settings.describe()


def _report(
    shapes_and_sparsity: list[tuple[list[int], float]], precision: str | None = "int8"
) -> SparsityReport:
    tensors = []
    for index, (shape, share) in enumerate(shapes_and_sparsity):
        numel = int(np.prod(shape))
        zeros = int(round(share * numel))
        tensors.append(
            TensorSparsity(
                name=f"encoder.layer.{index}.weight",
                shape=shape,
                numel=numel,
                zeros_before=zeros,
                status="matched",
                linear=True,
                zeros_after=zeros,
                extra_zeros=0,
                lost_zeros=0,
                precision=precision,
            )
        )
    total = sum(t.numel for t in tensors)
    zeros = sum(t.zeros_after for t in tensors)
    return SparsityReport(
        weight_format="int8",
        tensors=tensors,
        linear_numel=total,
        linear_zeros_before=zeros,
        linear_zeros_after=zeros,
        total_numel=total,
        total_zeros_before=zeros,
        total_zeros_after=zeros,
        extra_zeros=0,
        lost_zeros=0,
        position_exact=True,
        passed=True,
    )


MINILM_90 = [([384, 384], 0.9003)] * 4 + [([1536, 384], 0.9001), ([384, 1536], 0.9002)]


def test_sparse_kernels_need_amx_int8_and_zeros():
    amx, vnni, avx2 = (
        _cpu("amx_sapphirerapids.txt"),
        _cpu("avx512_vnni_cascadelake.txt"),
        _cpu("avx2_epyc.txt"),
    )
    sparse = _report(MINILM_90)
    chosen = sparse_decision(amx, "openvino", "int8", sparse)
    assert chosen.enabled and chosen.rate == 0.90 and chosen.eligible_matrices == 6
    assert "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE=0.90" in chosen.reason

    for cpu in (vnni, avx2):
        refused = sparse_decision(cpu, "openvino", "int8", sparse)
        assert not refused.enabled and refused.rate is None and "needs AMX" in refused.reason
        assert cpu.isa in refused.reason
    assert "ONNX Runtime" in sparse_decision(amx, "onnxruntime", "int8", sparse).reason
    fp32 = sparse_decision(amx, "openvino", "fp32", sparse)
    assert not fp32.enabled and "INT8 weights only" in fp32.reason
    assert "records no per-matrix sparsity" in sparse_decision(amx, "openvino", "int8", None).reason

    dense = sparse_decision(amx, "openvino", "int8", _report([([384, 384], 0.02)] * 3))
    assert (
        not dense.enabled
        and f"at least {MIN_SPARSE_RATE:.0%} zeros" in dense.reason
        and "2.0%" in dense.reason
    )
    tiny = sparse_decision(amx, "openvino", "int8", _report([([32, 32], 0.95)] * 3))
    assert not tiny.enabled and "multiple of 64" in tiny.reason
    kept_float = sparse_decision(amx, "openvino", "int8", _report(MINILM_90, precision="fp32"))
    assert not kept_float.enabled  # accuracy control kept every layer in floating point

    # the rate is the sparsest share every eligible matrix reaches, so all of them qualify
    mixed = sparse_decision(
        amx, "openvino", "int8", _report([([384, 384], 0.93), ([384, 384], 0.71), ([384, 384], 0.3)])
    )
    assert (
        mixed.enabled and mixed.rate == 0.71 and mixed.eligible_matrices == 2 and mixed.linear_matrices == 3
    )


def test_compile_settings_follow_the_cores():
    amx = _cpu("amx_sapphirerapids.txt")
    latency = choose_settings(
        amx, "openvino", hint="latency", weight_format="int8", sparsity=_report(MINILM_90)
    )
    assert (latency.streams, latency.threads) == (1, 8)
    config = latency.openvino_config()
    assert config["PERFORMANCE_HINT"] == "LATENCY" and config["NUM_STREAMS"] == 1
    assert config["INFERENCE_NUM_THREADS"] == 8 and config["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] == 0.9
    throughput = choose_settings(amx, "openvino", hint="throughput")
    assert (throughput.streams, throughput.threads) == (4, 8)
    assert "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE" not in throughput.openvino_config()
    two_cores = choose_settings(_cpu("avx2_epyc.txt"), "openvino", hint="throughput")
    assert (two_cores.streams, two_cores.threads) == (1, 2)
    forced = choose_settings(amx, "onnxruntime", threads=3, streams=2)
    options = forced.onnxruntime_options()
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert "PERF_COUNT" in latency.openvino_config(profile=True)
    with pytest.raises(ValueError):
        choose_settings(amx, "tensorrt")


def test_sparse_kernels_are_counted_from_performance_counters():
    ran = [
        SimpleNamespace(node_type="FullyConnected", exec_type="brgemm_sparse_avx512_amx_I8"),
        SimpleNamespace(node_type="FullyConnected", exec_type="brgemm_avx512_amx_I8"),
        SimpleNamespace(node_type="MatMul", exec_type="brgemm_avx512_amx_bf16"),
        SimpleNamespace(node_type="Softmax", exec_type="jit_avx512_f32"),
    ]
    assert count_sparse_kernels(ran) == (1, 2)
    decision = SparseDecision(True, 0.9, "requested")
    assert "verified: 1 of 2" in decision.with_verification(1, 2).reason
    declined = decision.with_verification(0, 12)
    assert "no sparse kernel in 12 FullyConnected layers" in declined.reason
    assert declined.verified_sparse_layers == 0


def test_requesting_sparse_kernels_here_is_checked_not_assumed(calibrate_once):
    """The rate is set for real and the counters read back; without AMX none of the layers runs sparse."""
    from pruneofa.core.runtime import Engine, model_file_for

    folder = calibrate_once("bert", "text-classification", "unstructured90", "openvino").output
    cpu = detect_cpu()
    settings = CompileSettings(
        runtime="openvino",
        hint="latency",
        streams=1,
        threads=cpu.cores,
        sparse=SparseDecision(True, 0.5, "forced for the test"),
        cpu=cpu.model,
        isa=cpu.isa,
    )
    engine = Engine(
        model_file_for(folder, "openvino"),
        "openvino",
        ("logits",),
        ov_config=settings.openvino_config(profile=True),
    )
    assert engine._compiled.get_property("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE") == pytest.approx(0.5)
    feed = {"input_ids": np.array([[2, 40, 41, 42, 3]]), "attention_mask": np.ones((1, 5), dtype=np.int64)}
    sparse_layers, fc_layers = count_sparse_kernels(engine.profile(feed))
    assert fc_layers > 0
    if not cpu.has_amx:
        assert (
            sparse_layers == 0
        )  # tiny 32-wide matrices and no AMX: the plugin declines, as the decision said


def test_bf16_inference_is_asked_for_and_refused_without_native_bf16():
    """--precision: f32 by default (the outputs export and calibrate checked); bf16 reaches OpenVINO's
    INFERENCE_PRECISION_HINT where the CPU has native bf16, and is refused in one line where it has not."""
    from pruneofa.core.errors import InputError

    sapphire, epyc = _cpu("amx_sapphirerapids.txt"), _cpu("avx2_epyc.txt")
    assert sapphire.has_native_bf16 and not epyc.has_native_bf16
    assert choose_settings(sapphire, "openvino").openvino_config()["INFERENCE_PRECISION_HINT"] == "f32"
    bf16 = choose_settings(sapphire, "openvino", precision="bf16")
    assert (
        bf16.openvino_config()["INFERENCE_PRECISION_HINT"] == "bf16" and "bf16 inference" in bf16.describe()
    )
    with pytest.raises(InputError, match="has no native bf16") as error:
        choose_settings(epyc, "openvino", precision="bf16")
    assert "\n" not in str(error.value) and "--precision f32" in str(error.value)
    assert choose_settings(epyc, "onnxruntime", precision="bf16").runtime == "onnxruntime"  # OpenVINO's only
