"""``auto``'s crossover tables: lookup per sparse format and dense kind, the named fallbacks, the schema check,
and the decisions on a tiny INT8 IR (FakeQuantize in front of each MatMul) and an FP32 IR."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kernel_helpers import random_sparse, require_kernels

from pruneofa.core.errors import InputError
from pruneofa.kernels import crossover


def entry(fmt: str, dense: str, value: float, k: int = 384, n: int = 384) -> dict:
    return {"format": fmt, "dense": dense, "in_features": k, "out_features": n, "crossover": value}


def table(isa: str, *entries: dict) -> dict:
    return {"schema": 2, "tables": {isa: {"dense_isa": {"fp32": {"isa": isa}}, "entries": list(entries)}}}


SYNTHETIC = table(
    "avx512",
    entry("csr", "fp32", 0.6),
    entry("csr", "int8", 0.8),
    entry("block4x1", "fp32", 0.5),
    entry("int8-1x4-static", "int8", 0.7),
    entry("csr", "bf16", 0.75),
)


def test_lookup_per_format_and_dense_kind():
    assert crossover.crossover(384, 384, "avx512", SYNTHETIC, "csr", "fp32") == 0.6
    assert crossover.crossover(384, 384, "avx512", SYNTHETIC, "csr", "int8") == 0.8
    assert crossover.crossover(384, 384, "avx512", SYNTHETIC, "block4x1", "fp32") == 0.5
    assert crossover.crossover(384, 384, "avx512", SYNTHETIC, "block4x1", "int8") is None
    assert crossover.crossover(384, 384, "avx2", SYNTHETIC, "csr", "fp32") is None
    sparse = crossover.choose(384, 384, 0.72, "int8-1x4-static", "int8", "avx512", SYNTHETIC)
    assert sparse.sparse and sparse.crossover == 0.7
    assert "int8-1x4-static vs dense-int8 (avx512)" in sparse.reason and "70.0%" in sparse.reason
    assert "fallback" not in sparse.reason
    dense = crossover.choose(384, 384, 0.72, "csr", "int8", "avx512", SYNTHETIC)
    assert not dense.sparse and dense.reason.startswith("below crossover: csr vs dense-int8 (avx512)")
    assert "80.0%" in dense.reason
    bf16 = crossover.choose(384, 384, 0.7, "csr", "bf16", "avx512", SYNTHETIC)
    assert not bf16.sparse and bf16.crossover == 0.75


def test_interpolation_stays_within_one_format_and_dense_kind():
    mixed = table(
        "avx2",
        entry("csr", "fp32", 0.6, 384, 384),
        entry("csr", "fp32", 0.4, 768, 768),
        entry("csr", "fp32", 0.5, 384, 1536),
        entry("csr", "int8", 0.99, 512, 512),
    )
    between = crossover.crossover(512, 512, "avx2", mixed)
    assert 0.4 < between < 0.6
    assert crossover.crossover(512, 512, "avx2", mixed, "csr", "int8") == 0.99


@pytest.mark.parametrize(
    "fmt, dense, gemm, used, sparse",
    [
        ("block", "fp32", False, "csr vs dense-fp32", True),  # block 1x4 FP32 -> csr's entries
        ("int8-csr", "int8", False, "csr vs dense-int8", False),  # same dense kind first
        ("block4x1", "bf16", False, "csr vs dense-bf16", True),
        ("int8-1x4-dynamic", "fp32", False, "csr vs dense-fp32", True),
    ],
)
def test_fallback_is_named(fmt, dense, gemm, used, sparse):
    verdict = crossover.choose(384, 384, 0.78, fmt, dense, "avx512", SYNTHETIC, int8_gemm=gemm)
    assert verdict.sparse is sparse
    assert (
        used in verdict.reason and f"fallback: no {fmt} vs dense-{dense} table for avx512" in verdict.reason
    )


def test_fallbacks_without_dense_int8_or_bf16_entries():
    fp32_only = table("avx2", entry("csr", "fp32", 0.7))
    int8_compute = crossover.choose(
        384, 384, 0.9, "int8-1x4-static", "int8", "avx2", fp32_only, int8_gemm=True
    )
    assert int8_compute.sparse and int8_compute.crossover == 0.7
    assert "csr vs dense-fp32 (avx2)" in int8_compute.reason
    assert "no int8-1x4-static vs dense-int8 table for avx2" in int8_compute.reason
    kept = crossover.choose(384, 384, 0.9, "int8-csr", "int8", "avx2", fp32_only, int8_gemm=True)
    assert not kept.sparse and kept.crossover is None
    assert crossover.INT8_GEMM_REASON in kept.reason and "no int8-csr vs dense-int8 table" in kept.reason
    no_gemm = crossover.choose(384, 384, 0.9, "int8-csr", "int8", "avx2", fp32_only, int8_gemm=False)
    assert no_gemm.sparse and "csr vs dense-fp32" in no_gemm.reason
    bf16 = crossover.choose(384, 384, 0.65, "csr", "bf16", "avx2", fp32_only)
    assert not bf16.sparse and "csr vs dense-fp32 (avx2) 65.0% < 70.0%" in bf16.reason
    nothing = crossover.choose(384, 384, 0.99, "csr", "fp32", "avx512", fp32_only)
    assert not nothing.sparse and nothing.reason.startswith("no crossover measured for ISA avx512")


def test_schema_1_reads_as_csr_against_dense_fp32():
    old = {"cpu": "AMD EPYC", "isas": {"avx2": {"threads": 2, "shapes": [
        {"in_features": 384, "out_features": 384, "crossover": 0.72, "tokens": {}}]}}}  # fmt: skip
    new = crossover.normalise(old)
    assert new["schema"] == crossover.SCHEMA
    assert new["tables"]["avx2"]["dense_isa"] == "not recorded (schema 1)"
    assert crossover.crossover(384, 384, "avx2", old) == 0.72
    assert crossover.crossover(384, 384, "avx2", old, "csr", "int8") is None


def test_shipped_table_is_valid():
    shipped = crossover.load_table(crossover.TABLE_PATH)
    assert shipped["schema"] == crossover.SCHEMA and shipped["tables"]
    assert all(table["entries"] for table in shipped["tables"].values())
    # every measured format against every dense kind the avx512 table's CPU ran, each dense kind on avx512
    avx512 = shipped["tables"]["avx512"]
    pairs = {(e["format"], e["dense"]) for e in avx512["entries"]}
    kinds = set(avx512["dense_isa"])
    assert {(f, d) for f in crossover.MEASURED_FORMATS for d in kinds} <= pairs, pairs
    assert all(v["isa"] == "avx512" for v in avx512["dense_isa"].values())
    # tables of other CPU models (machines): each names its CPU and flags and is as complete as the default
    raw = json.loads(crossover.TABLE_PATH.read_text(encoding="utf-8"))
    for isa, others in raw.get("machines", {}).items():
        for other in others:
            assert other["cpu"] and other["flags"] and other["measured"], other["cpu"]
            kinds = set(other["dense_isa"])
            assert {(e["format"], e["dense"]) for e in other["entries"]} >= {
                (f, d) for f in crossover.MEASURED_FORMATS for d in kinds
            }, other["cpu"]
            assert all(v["isa"] == isa for v in other["dense_isa"].values()), other["cpu"]
    # avx2: never an entry measured against AVX-512 dense without saying so
    avx2 = shipped["tables"]["avx2"]
    for e in avx2["entries"]:
        ran = avx2["dense_isa"][e["dense"]]["isa"]
        assert ran == "avx2" or "provenance" in e, e


@pytest.mark.parametrize(
    "raw, problem",
    [
        ([], "JSON object"),
        ({"schema": 3, "tables": {}}, "schema 3"),
        ({"schema": 2, "tables": []}, "'tables'"),
        ({"schema": 2, "tables": {"avx2": {}}}, "'entries'"),
        (table("avx2", entry("csr", "fp32", 1.5)), "'crossover'"),
        (table("avx2", entry("csr", "fp16", 0.5)), "'dense'"),
        (table("avx2", {**entry("csr", "fp32", 0.5), "in_features": 0}), "'in_features'"),
        ({"isas": {"avx2": {"shapes": [{"in_features": 4, "out_features": 4}]}}}, "'crossover'"),
    ],
)
def test_malformed_table_is_one_line(tmp_path, raw, problem):
    path = tmp_path / "table.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(InputError) as err:
        crossover.load_table(path)
    message = str(err.value)
    assert "\n" not in message and problem in message and "kernels_layers.py" in message


def test_table_from_the_environment(tmp_path, monkeypatch):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(table("avx2", entry("csr", "fp32", 0.42))), encoding="utf-8")
    monkeypatch.setenv(crossover.TABLE_ENV, str(mine))
    assert crossover.table_path() == mine
    assert crossover.crossover(384, 384, "avx2") == 0.42
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(crossover.TABLE_ENV, str(tmp_path / "bad.json"))
    with pytest.raises(InputError, match="is not JSON"):
        crossover.load_table()
    monkeypatch.setenv(crossover.TABLE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match="does not exist"):
        crossover.load_table()


# ---- auto on tiny IRs -----------------------------------------------------------------------------

K = N = 64
STEP = np.float32(8.0 / 255.0)


def _int8_ir(rng):
    """Two Linear layers as NNCF's PTQ writes them (u8 FakeQuantize on the activation, s8 weights with
    per-row scales): the first in 1 x 4 blocks (int8-1x4, INT8 compute), the second unstructured (int8-csr,
    FP32 compute); both 90 % zeros."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, K], np.float32, name="x")
    low, high = np.float32(-128 * STEP), np.float32(127 * STEP)
    out = x
    for name, block in (("blocks", 4), ("unstructured", 1)):
        q = np.rint(random_sparse(rng, N, K, 0.9, block=block) * 40).clip(-127, 127).astype(np.int8)
        weight = ops.multiply(
            ops.convert(ops.constant(q), np.float32), ops.constant(np.full((N, 1), 0.01, np.float32))
        )
        matmul = ops.matmul(ops.fake_quantize(out, low, high, low, high, 256), weight, False, True)
        matmul.set_friendly_name(name)
        out = matmul
    return ov.Model([out.output(0)], [x])


def _fp32_ir(rng):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, K], np.float32, name="x")
    matmul = ops.matmul(x, ops.constant(random_sparse(rng, N, K, 0.9)), False, True)
    matmul.set_friendly_name("fp32")
    return ov.Model([matmul.output(0)], [x])


def test_auto_on_an_int8_ir():
    kernels = require_kernels()
    isa = kernels.isa()
    rng = np.random.default_rng(3)
    synthetic = table(isa, entry("int8-1x4-static", "int8", 0.95, K, N), entry("csr", "int8", 0.5, K, N))
    report = kernels.rewrite(_int8_ir(rng), "auto", table=synthetic, precision_hint="f32")
    layers = {layer.name: layer for layer in report.layers}
    blocks, unstructured = layers["blocks"], layers["unstructured"]
    assert (blocks.format, blocks.dense, blocks.sparse) == ("int8-1x4", "int8", False)
    assert blocks.crossover == 0.95 and "int8-1x4-static vs dense-int8" in blocks.reason
    assert (unstructured.format, unstructured.dense, unstructured.sparse) == ("int8-csr", "int8", True)
    assert (
        "csr vs dense-int8" in unstructured.reason
        and "no int8-csr vs dense-int8 table" in unstructured.reason
    )
    assert report.to_dict()["why"] == {"blocks": blocks.reason, "unstructured": unstructured.reason}
    assert report.table is not None and report.table["source"] == "given"
    # A table with CSR-vs-FP32 entries only: the documented fallback, from the CPU's INT8 GEMM.
    fp32_only = table(isa, entry("csr", "fp32", 0.5, K, N))
    kept = kernels.rewrite(_int8_ir(rng), "auto", table=fp32_only, int8_gemm=True, precision_hint="f32")
    by_name = {layer.name: layer for layer in kept.layers}
    assert by_name["blocks"].sparse and "csr vs dense-fp32" in by_name["blocks"].reason
    assert not by_name["unstructured"].sparse  # kept dense: the CPU's INT8 GEMM (the fallback)
    assert crossover.INT8_GEMM_REASON in by_name["unstructured"].reason


def test_auto_on_an_fp32_ir_follows_the_precision_hint():
    kernels = require_kernels()
    isa = kernels.isa()
    rng = np.random.default_rng(4)
    synthetic = table(isa, entry("csr", "fp32", 0.5, K, N), entry("csr", "bf16", 0.95, K, N))
    f32 = kernels.rewrite(_fp32_ir(rng), "auto", table=synthetic, precision_hint="f32")
    (layer,) = f32.layers
    assert layer.sparse and layer.dense == "fp32" and "csr vs dense-fp32" in layer.reason
    bf16 = kernels.rewrite(_fp32_ir(rng), "auto", table=synthetic, precision_hint="bf16")
    (layer,) = bf16.layers
    assert not layer.sparse and layer.dense == "bf16" and layer.crossover == 0.95
    assert "below crossover: csr vs dense-bf16" in layer.reason
    assert "auto" in bf16.summary()


def test_precision_hint_spellings():
    import openvino as ov

    from pruneofa.kernels.rewrite import plugin_precision

    assert plugin_precision("BF16") == plugin_precision(ov.Type.bf16) == "bf16"
    assert plugin_precision(ov.Type.f32) == "f32"
    assert plugin_precision(None) == plugin_precision(
        ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    )


def test_a_table_from_another_cpu_is_named_in_the_summary(monkeypatch):
    """A table measures one machine: where its CPU (name and ISA flags) is not this one, the report
    keeps both names and the summary says the thresholds are an estimate and how to measure exact ones."""
    import dataclasses

    from pruneofa.core import cpu as cpu_module

    kernels = require_kernels()
    isa = kernels.isa()
    here = cpu_module.detect_cpu()
    rng = np.random.default_rng(5)
    measured = table(isa, entry("csr", "fp32", 0.5, K, N))
    cases = [
        (here.model, sorted(here.flags), True),
        (f"  {here.model.upper()}  ", sorted(here.flags), True),  # case and spacing set aside
        (here.model, sorted(here.flags - {"avx512f", "avx512_vnni"}), here.flags <= {"avx2"}),
        ("Some Other CPU", sorted(here.flags), False),
    ]
    for name, flags, same in cases:
        measured["tables"][isa].update(cpu=name, flags=flags)
        report = kernels.rewrite(_fp32_ir(rng), "auto", table=measured, precision_hint="f32")
        assert report.table is not None and report.table["this_cpu"] == here.model
        assert report.table["same_cpu"] is same, (name, flags)
        assert ("not on this CPU" in report.summary()) is (not same)
        assert ("kernels_layers.py" in report.summary()) is (not same)
        assert report.layers[0].crossover == 0.5  # the note is there because this decision read the table
    # VMs of different generations can share a name; the flags still tell them apart
    zen3 = dataclasses.replace(here, model="AMD EPYC", flags=frozenset({"avx2"}))
    monkeypatch.setattr(cpu_module, "detect_cpu", lambda: zen3)
    measured["tables"][isa].update(cpu="AMD EPYC", flags=["avx2", "avx512_bf16", "avx512_vnni", "avx512f"])
    report = kernels.rewrite(_fp32_ir(rng), "auto", table=measured, precision_hint="f32")
    assert report.table is not None and report.table["same_cpu"] is False
    assert (
        "measured on AMD EPYC [avx2 avx512_bf16 avx512_vnni avx512f], not on this CPU (AMD EPYC [avx2])"
        in (report.summary())
    )
    # a dense model stays dense whatever the table says: no note
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, K], np.float32, name="x")
    weight = rng.standard_normal((N, K)).astype(np.float32)
    dense_ir = ov.Model([ops.matmul(x, ops.constant(weight), False, True).output(0)], [x])
    dense = kernels.rewrite(dense_ir, "auto", table=measured, precision_hint="f32")
    assert dense.table is not None and dense.table["same_cpu"] is False
    assert not dense.layers[0].sparse and "not on this CPU" not in dense.summary()


def _measured_on(name: str, flags: list[str], value: float) -> dict:
    return {"cpu": name, "flags": flags, "entries": [entry("csr", "fp32", value)]}


def test_a_table_measured_on_this_cpu_model_is_chosen_from_machines(monkeypatch):
    """``machines`` holds tables of the same kernel ISA from other CPU models: on a CPU like one of them,
    its table is the ISA's; elsewhere the default is."""
    import dataclasses

    from pruneofa.core import cpu as cpu_module

    here = dataclasses.replace(
        cpu_module.detect_cpu(), model="Intel Xeon X", flags=frozenset({"avx2", "avx512f"})
    )
    monkeypatch.setattr(cpu_module, "detect_cpu", lambda: here)
    raw = {
        "schema": 2,
        "tables": {"avx512": _measured_on("AMD EPYC", ["avx2", "avx512f", "avx512_bf16"], 0.6)},
        "machines": {
            "avx512": [
                _measured_on(
                    "Intel Xeon X", ["avx2", "avx512f", "avx512_vnni"], 0.9
                ),  # other flags: not here
                _measured_on("Intel(R) Xeon(R) X", ["avx2", "avx512f"], 0.7),
            ]
        },
    }
    assert crossover.crossover(384, 384, "avx512", raw) == 0.7
    elsewhere = dataclasses.replace(here, model="Some Other CPU")
    monkeypatch.setattr(cpu_module, "detect_cpu", lambda: elsewhere)
    assert crossover.crossover(384, 384, "avx512", raw) == 0.6
    for bad, problem in [
        ({**raw, "machines": []}, "'machines'"),
        ({**raw, "machines": {"avx512": [{"entries": []}]}}, "'cpu' and 'flags'"),
        (
            {**raw, "machines": {"avx512": [{**_measured_on("X", [], 0.5), "entries": [{"format": 1}]}]}},
            "'format'",
        ),
    ]:
        with pytest.raises(InputError, match=problem):
            crossover.normalise(bad)


@pytest.fixture(scope="module")
def layers_benchmark():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels_layers.py"
    sys.path.insert(0, str(path.parent))  # its sibling kernels_layer_models
    spec = importlib.util.spec_from_file_location("kernels_layers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_kernels_layers_keeps_another_cpus_default_and_adds_this_ones_beside_it(
    layers_benchmark, monkeypatch
):
    import dataclasses

    from pruneofa.core import cpu as cpu_module

    here = dataclasses.replace(
        cpu_module.detect_cpu(), model="Intel Xeon X", flags=frozenset({"avx2", "avx512f"})
    )
    monkeypatch.setattr(cpu_module, "detect_cpu", lambda: here)
    amd = _measured_on("AMD EPYC", ["avx2", "avx512f", "avx512_bf16"], 0.6)
    mine = _measured_on("Intel Xeon X", ["avx2", "avx512f"], 0.7)
    again = _measured_on("Intel Xeon X", ["avx2", "avx512f"], 0.75)
    merge = layers_benchmark.merge
    # another CPU's default stays; this CPU's goes under machines, and a second run replaces it there
    first = merge({"tables": {"avx512": amd, "avx2": amd}}, {"avx512": mine}, make_default=False)
    assert first == {"tables": {"avx512": amd, "avx2": amd}, "machines": {"avx512": [mine]}}
    second = merge(first, {"avx512": again}, make_default=False)
    assert second["machines"] == {"avx512": [again]} and second["tables"]["avx512"] is amd
    # --default: this CPU's becomes the default, the other moves under machines
    swapped = merge(second, {"avx512": mine}, make_default=True)
    assert swapped["tables"]["avx512"] is mine and swapped["machines"] == {"avx512": [amd]}
    # a default of this CPU is replaced in place; a new ISA is added as its default
    assert merge({"tables": {"avx512": mine}}, {"avx512": again, "avx2": mine}, make_default=False) == {
        "tables": {"avx512": again, "avx2": mine}
    }
    # what it writes reads back, and on this CPU model its own table is the one auto uses
    table = {"schema": 2, **first}
    assert crossover.crossover(384, 384, "avx512", crossover.normalise(table)) == 0.7
