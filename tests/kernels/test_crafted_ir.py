"""Tampered sparse IRs are refused when the model is read, with one line naming the problem, never read out
of bounds at inference: OpenVINO Model Server loads these IRs with ``--cpu_extension``, so an IR is
untrusted input. Each case edits a saved IR the way an attacker could (a constant's bytes or length, an
attribute, a weight input made a Parameter) for each of the three ops."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import random_sparse, require_kernels  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
OPS = ("SparseLinear", "SparseLinearPair", "SparseLinearSplit")


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


def _chain_model(rng, sizes):
    """x -> MatMul + bias per consecutive pair of ``sizes`` (rewritten to a SparseLinearPair)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, -1, sizes[0]], np.float32, name="x")
    out = x
    for i, (k, n) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = random_sparse(rng, n, k, 0.8)
        out = ops.add(
            ops.matmul(out, ops.constant(w), False, True),
            ops.constant(rng.standard_normal(n).astype(np.float32)),
        )
        out.set_friendly_name(f"layer{i}")
    return ov.Model([out.output(0)], [x])


def _siblings_model(rng, k, n, count):
    """x -> ``count`` MatMul + bias reading x (rewritten to a SparseLinearSplit)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, -1, k], np.float32, name="x")
    outs = []
    for _ in range(count):
        w = random_sparse(rng, n, k, 0.8)
        b = rng.standard_normal(n).astype(np.float32)
        outs.append(ops.add(ops.matmul(x, ops.constant(w), False, True), ops.constant(b)).output(0))
    return ov.Model(outs, [x])


def _single_model(rng):
    """One SparseLinear with INT8 values, per-row scales and a bias (every constant input kind)."""
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa.kernels import formats
    from pruneofa.kernels.rewrite import make_node

    w = random_sparse(rng, 48, 40, 0.8)
    q, scales = formats.quantize_rows(w)
    sw = formats.pack(w, bias=rng.standard_normal(48).astype(np.float32), block=1, int8=q, scales=scales)
    x = ops.parameter([-1, -1, 40], np.float32, name="x")
    return ov.Model([make_node(x.output(0), sw, name="layer").output(0)], [x])


@pytest.fixture(scope="module")
def saved_irs(kernels, tmp_path_factory):
    """One saved IR per op type: {op type: xml path}."""
    rng = np.random.default_rng(28)
    folder = tmp_path_factory.mktemp("crafted")
    models = {
        "SparseLinear": _single_model(rng),
        "SparseLinearPair": _chain_model(rng, [40, 64, 24]),
        "SparseLinearSplit": _siblings_model(rng, 40, 32, 3),
    }
    paths = {}
    for op, model in models.items():
        if op != "SparseLinear":
            kernels.rewrite(model, mode="on")
        assert [n.get_type_name() for n in kernels.sparse_nodes(model)] == [op]
        paths[op] = kernels.save_sparse_ir(model, folder / f"{op}.xml")
    return paths


class Ir:
    """A saved IR opened for editing: its sparse layer, the constants feeding it, and the weights file."""

    def __init__(self, xml: Path, out: Path):
        self.tree = ET.parse(xml)
        self.weights = bytearray(xml.with_suffix(".bin").read_bytes())
        self.out = out
        layers = self.tree.getroot().find("layers")
        self.layers = {layer.get("id"): layer for layer in layers}
        self.op = next(layer for layer in layers if layer.get("version") == "pruneofa")
        self.sources = {}  # op input port -> the layer feeding it
        for edge in self.tree.getroot().find("edges"):
            if edge.get("to-layer") == self.op.get("id"):
                self.sources[int(edge.get("to-port"))] = self.layers[edge.get("from-layer")]

    def constant(self, port: int) -> np.ndarray:
        data = self.sources[port].find("data")
        dtype = {"i32": np.int32, "f32": np.float32, "i8": np.int8}[data.get("element_type")]
        offset, size = int(data.get("offset")), int(data.get("size"))
        return np.frombuffer(bytes(self.weights[offset : offset + size]), dtype).copy()

    def set_constant(self, port: int, array: np.ndarray) -> None:
        """Point the constant at ``array``'s bytes (appended to the weights) with its length."""
        layer = self.sources[port]
        data = layer.find("data")
        array = np.ascontiguousarray(
            array, {"i32": np.int32, "f32": np.float32, "i8": np.int8}[data.get("element_type")]
        )
        data.set("offset", str(len(self.weights)))
        data.set("size", str(array.nbytes))
        data.set("shape", str(array.size))
        layer.find("output/port/dim").text = str(array.size)
        self.weights += array.tobytes()

    def make_parameter(self, port: int) -> None:
        """Turn the constant feeding ``port`` into a model input (a weight computed at run time)."""
        layer = self.sources[port]
        data = layer.find("data")
        layer.set("type", "Parameter")
        for key in ("offset", "size"):
            data.attrib.pop(key)

    def save(self) -> Path:
        self.tree.write(self.out)
        self.out.with_suffix(".bin").write_bytes(bytes(self.weights))
        return self.out


def _ports(ir: Ir) -> dict[str, int]:
    """The first layer's input ports by role (row_ptr, col_idx, values[, scales][, bias])."""
    names = ["row_ptr", "col_idx", "values"]
    types = [ir.sources[p].find("data").get("element_type") for p in (1, 2, 3)]
    if types[2] == "i8":
        names.append("scales")
    names.append("bias")
    return {name: i + 1 for i, name in enumerate(names)}


def _not_monotonic(ir, p):
    rp = ir.constant(p["row_ptr"])
    rp[1] = rp[-1]
    ir.set_constant(p["row_ptr"], rp)


def _first_not_zero(ir, p):
    rp = ir.constant(p["row_ptr"])
    rp[0] = 1
    ir.set_constant(p["row_ptr"], rp)


def _end_past_blocks(ir, p):
    rp = ir.constant(p["row_ptr"])
    rp[-1] += 5
    ir.set_constant(p["row_ptr"], rp)


def _col(value):
    def tamper(ir, p):
        ci = ir.constant(p["col_idx"])
        ci[len(ci) // 2] = value if value is not None else int(ir.op.find("data").get("in_features"))
        ir.set_constant(p["col_idx"], ci)

    return tamper


def _short(role, keep=-1):
    def tamper(ir, p):
        array = ir.constant(p[role])
        ir.set_constant(p[role], array[:keep])

    return tamper


def _attribute(name, value):
    def tamper(ir, p):
        data = ir.op.find("data")
        assert name in data.attrib, (name, data.attrib)
        data.set(name, value)

    return tamper


def _parameter(role):
    def tamper(ir, p):
        ir.make_parameter(p[role])

    return tamper


def _block_attribute(ir):
    return "first_block" if "first_block" in ir.op.find("data").attrib else "block"


def _bad_block(value):
    def tamper(ir, p):
        ir.op.find("data").set(_block_attribute(ir), value)

    return tamper


def _features(value):
    def tamper(ir, p):
        ir.op.find("data").set("in_features", value)

    return tamper


CASES = {
    "row_ptr not monotonic": (_not_monotonic, "non-decreasing"),
    "row_ptr[0] not 0": (_first_not_zero, "row_ptr[0] must be 0"),
    "row_ptr ends past the blocks": (_end_past_blocks, "number of blocks"),
    "col_idx = in_features": (_col(None), "column index is out of range"),
    "col_idx negative": (_col(-1), "column index is out of range"),
    "col_idx huge": (_col(2**31 - 1), "column index is out of range"),
    "short row_ptr": (_short("row_ptr"), "row_ptr holds"),
    "short col_idx": (_short("col_idx"), "values holds"),
    "short values": (_short("values"), "values holds"),
    "1-entry bias": (_short("bias", 1), "bias holds 1 entries"),
    "empty bias": (_short("bias", 0), "bias holds 0 entries"),
    "bias is a Parameter": (_parameter("bias"), "must be a Constant"),
    "row_ptr is a Parameter": (_parameter("row_ptr"), "must be a Constant"),
    "col_idx is a Parameter": (_parameter("col_idx"), "must be a Constant"),
    "block 3": (_bad_block("3"), "block must be 1, 2, 4 or 8"),
    "block 16": (_bad_block("16"), "block must be 1, 2, 4 or 8"),
    "block 0": (_bad_block("0"), "block must be 1, 2, 4 or 8"),
    "in_features 0": (_features("0"), "in_features must be in"),
    "in_features negative": (_features("-8"), "in_features must be in"),
    "in_features 2^40": (_features(str(2**40)), "in_features must be in"),
}
SPLIT_CASES = {
    "parts 5": (_attribute("parts", "5"), "parts must divide out_features"),
    "parts 0": (_attribute("parts", "0"), "parts must be in"),
    "parts 96": (_attribute("parts", "96"), "parts must be in"),
    "out_features 2^62": (_attribute("out_features", str(2**62)), "out_features must be in"),
}
SINGLE_CASES = {
    "short scales": (_short("scales"), "scales holds"),
    "scales are a Parameter": (_parameter("scales"), "must be a Constant"),
    "activation unknown": (_attribute("activation", "relu"), "activation must be"),
}


def _refused(kernels, xml: Path, expected: str) -> str:
    """Reads ``xml`` with the extension and returns the last line of OpenVINO's refusal."""
    import openvino as ov

    from pruneofa.core.errors import last_line

    core = ov.Core()
    kernels.register(core)
    with pytest.raises(RuntimeError) as info:
        core.compile_model(core.read_model(str(xml)), "CPU", F32)
    line = last_line(info.value)
    assert expected in line and "invalid sparse layer" in line, str(info.value)
    return line


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_ir_is_refused_when_read(kernels, saved_irs, tmp_path, op, case):
    ir = Ir(saved_irs[op], tmp_path / "tampered.xml")
    tamper, expected = CASES[case]
    tamper(ir, _ports(ir))
    line = _refused(kernels, ir.save(), expected)
    assert op in line  # the node is named


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_tampered_split_is_refused(kernels, saved_irs, tmp_path, case):
    ir = Ir(saved_irs["SparseLinearSplit"], tmp_path / "tampered.xml")
    tamper, expected = SPLIT_CASES[case]
    tamper(ir, _ports(ir))
    _refused(kernels, ir.save(), expected)


@pytest.mark.parametrize("case", sorted(SINGLE_CASES))
def test_tampered_int8_layer_is_refused(kernels, saved_irs, tmp_path, case):
    ir = Ir(saved_irs["SparseLinear"], tmp_path / "tampered.xml")
    tamper, expected = SINGLE_CASES[case]
    tamper(ir, _ports(ir))
    _refused(kernels, ir.save(), expected)


def test_pair_second_layer_is_checked_too(kernels, saved_irs, tmp_path):
    ir = Ir(saved_irs["SparseLinearPair"], tmp_path / "tampered.xml")
    second_col_idx = 2 + len(_ports(ir))  # X, the first layer's constants, then row_ptr, col_idx, ...
    ci = ir.constant(second_col_idx)
    ci[-1] = 64  # the hidden width: out of range for the second layer
    ir.set_constant(second_col_idx, ci)
    _refused(kernels, ir.save(), "column index is out of range")


def test_one_bias_entry_for_four_million_outputs(kernels, saved_irs, tmp_path):
    """The reproduction that crashed OpenVINO Model Server: out_features 4M, every other length consistent."""
    ir = Ir(saved_irs["SparseLinear"], tmp_path / "tampered.xml")
    p = _ports(ir)
    n = 4 * 1024 * 1024
    blocks = len(ir.constant(p["col_idx"]))
    row_ptr = np.full(n + 1, blocks, np.int32)
    row_ptr[0] = 0
    ir.set_constant(p["row_ptr"], row_ptr)
    ir.set_constant(p["scales"], np.ones(n, np.float32))
    ir.set_constant(p["bias"], np.zeros(1, np.float32))
    ir.op.find("data").set("out_features", str(n))
    _refused(kernels, ir.save(), f"bias holds 1 entries, out_features is {n}")


def test_untampered_copy_reads_and_runs(kernels, saved_irs, tmp_path):
    """The editing itself keeps a sound IR sound (each constant rewritten with its own bytes)."""
    import openvino as ov

    for op, xml in saved_irs.items():
        ir = Ir(xml, tmp_path / f"{op}.xml")
        for port, role in enumerate(_ports(ir), start=1):
            assert role
            ir.set_constant(port, ir.constant(port))
        core = ov.Core()
        kernels.register(core)
        x = np.random.default_rng(0).standard_normal((2, 3, 40)).astype(np.float32)
        want = [o.copy() for o in core.compile_model(core.read_model(str(xml)), "CPU", F32)([x]).values()]
        got = [
            o.copy() for o in core.compile_model(core.read_model(str(ir.save())), "CPU", F32)([x]).values()
        ]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_read_sparse_ir_gives_one_line(kernels, saved_irs, tmp_path):
    import openvino as ov

    from pruneofa.core.errors import InputError

    ir = Ir(saved_irs["SparseLinearSplit"], tmp_path / "tampered.xml")
    _col(-1)(ir, _ports(ir))
    xml = ir.save()
    with pytest.raises(InputError) as info:
        kernels.read_sparse_ir(ov.Core(), xml)
    message = str(info.value)
    assert "\n" not in message and str(xml) in message and "column index is out of range" in message


def test_dynamic_shapes_do_not_repeat_the_load_check(kernels, saved_irs):
    """The O(nnz) check runs when the model is read, not at each inference (OpenVINO re-validates a clone
    of the node at every call with dynamic shapes)."""
    import openvino as ov

    core = ov.Core()
    kernels.register(core)
    before = kernels.library.load_checks()
    compiled = core.compile_model(core.read_model(str(saved_irs["SparseLinearPair"])), "CPU", F32)
    loaded = kernels.library.load_checks()
    assert loaded > before
    request = compiled.create_infer_request()
    for seq in range(1, 20):
        request.infer([np.ones((1, seq, 40), np.float32)])
    assert kernels.library.load_checks() == loaded


def test_direct_kernel_call_checks_lengths_too(kernels):
    """library.spmm (tests, benchmarks) refuses constants whose lengths do not match, as the ops do."""
    from pruneofa.kernels import formats, library

    sw = formats.pack(np.eye(4, dtype=np.float32), bias=np.zeros(4, np.float32))
    sw.bias = sw.bias[:1]
    with pytest.raises(ValueError, match="lengths do not match"):
        library.spmm(np.ones((2, 4), np.float32), sw)


# ---- The compute attributes: 4 x 1 blocks and INT8 compute ---------------------------------------------

STATIC = ("static", 0.05, 128)


def _compute_models(rng):
    """{name: (model, weight, quant)} for a 4 x 1 FP32 layer and an INT8-compute 1 x 4 layer (static)."""
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa.kernels import formats, library
    from pruneofa.kernels.rewrite import make_node

    w4 = np.repeat(random_sparse(rng, 12, 40, 0.8), 4, axis=0) * rng.standard_normal((48, 1)).astype(
        np.float32
    )
    sw4 = formats.pack_4x1(w4, bias=rng.standard_normal(48).astype(np.float32))
    q, scales = formats.quantize_rows(np.repeat(random_sparse(rng, 48, 10, 0.7), 4, axis=1)[:, :38])
    sw8 = formats.pack_int8_1x4(q, scales, bias=rng.standard_normal(48).astype(np.float32))
    quant = library.ActQuant(*STATIC)
    models = {}
    for name, sw, k, layer_quant in (("block4x1", sw4, 40, None), ("int8-1x4", sw8, 38, quant)):
        assert sw.format == name
        x = ops.parameter([-1, -1, k], np.float32, name="x")
        node = make_node(x.output(0), sw, name="layer", quant=layer_quant)
        models[name] = (ov.Model([node.output(0)], [x]), sw, layer_quant)
    return models


@pytest.fixture(scope="module")
def compute_irs(kernels, tmp_path_factory):
    """{format: (xml path, weight, quant)} for the 4 x 1 and INT8-compute layers, saved."""
    folder = tmp_path_factory.mktemp("crafted_compute")
    irs = {}
    for name, (model, sw, quant) in _compute_models(np.random.default_rng(31)).items():
        irs[name] = (kernels.save_sparse_ir(model, folder / f"{name}.xml"), sw, quant)
    return irs


def _row_ptr_n_plus_1(ir, p):
    """A 4 x 1 layer's row_ptr with N + 1 entries (the 1 x block layout's length), consistent otherwise."""
    rp = ir.constant(p["row_ptr"])
    n = int(ir.op.find("data").get("out_features"))
    ir.set_constant(p["row_ptr"], np.concatenate([rp, np.full(n + 1 - rp.size, rp[-1], np.int32)]))


COMPUTE_CASES = {
    "4x1 row_ptr of N + 1": ("block4x1", _row_ptr_n_plus_1, "row_ptr holds 49 entries"),
    "4x1 out_features 46": ("block4x1", _attribute("out_features", "46"), "out_features a multiple of 4"),
    "4x1 with INT8 compute": ("block4x1", _attribute("activation_quant", "dynamic"), "4 x 1 blocks"),
    "block_rows 2": ("block4x1", _attribute("block_rows", "2"), "block_rows must be 1 or 4"),
    "activation_quant unknown": (
        "int8-1x4",
        _attribute("activation_quant", "fast"),
        "activation_quant must be",
    ),
    "static scale negative": (
        "int8-1x4",
        _attribute("activation_scale", "-0.5"),
        "finite activation_scale > 0",
    ),
    "static scale NaN": ("int8-1x4", _attribute("activation_scale", "nan"), "finite activation_scale > 0"),
    "static scale 0": ("int8-1x4", _attribute("activation_scale", "0"), "finite activation_scale > 0"),
    "static scale 1e39 (inf)": (
        "int8-1x4",
        _attribute("activation_scale", "1e39"),
        "finite activation_scale > 0",
    ),
    "static zero point 300": (
        "int8-1x4",
        _attribute("activation_zero_point", "300"),
        "activation_zero_point in",
    ),
    "static zero point -1": (
        "int8-1x4",
        _attribute("activation_zero_point", "-1"),
        "activation_zero_point in",
    ),
    "INT8 compute column not 4-aligned": ("int8-1x4", _col(2), "multiple of 4"),
    "INT8 compute block 2": ("int8-1x4", _bad_block("2"), "1 x 4 blocks"),
}


@pytest.mark.parametrize("case", sorted(COMPUTE_CASES))
def test_tampered_compute_attribute_is_refused(kernels, compute_irs, tmp_path, case):
    name, tamper, expected = COMPUTE_CASES[case]
    ir = Ir(compute_irs[name][0], tmp_path / "tampered.xml")
    tamper(ir, _ports(ir))
    line = _refused(kernels, ir.save(), expected)
    assert "\n" not in line


@pytest.mark.parametrize("name", ["block4x1", "int8-1x4"])
def test_sound_compute_irs_load_and_match_the_kernel(kernels, compute_irs, name):
    import openvino as ov

    from pruneofa.kernels import library

    xml, sw, quant = compute_irs[name]
    core = ov.Core()
    kernels.register(core)
    x = np.random.default_rng(5).standard_normal((2, 37, sw.in_features)).astype(np.float32)
    got = core.compile_model(core.read_model(str(xml)), "CPU", F32)([x])[0]
    np.testing.assert_array_equal(got, library.spmm(x, sw, quant=quant))


def test_int8_row_sums_come_with_the_load_check(kernels, compute_irs):
    """INT8 compute's row sums are taken from the constants in the load-time check, not per inference:
    dynamic-shape inferences neither repeat the check nor change a result."""
    import openvino as ov

    from pruneofa.kernels import library

    xml, sw, quant = compute_irs["int8-1x4"]
    core = ov.Core()
    kernels.register(core)
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", F32)
    loaded = library.load_checks()
    request = compiled.create_infer_request()
    rng = np.random.default_rng(9)
    for seq in (1, 5, 33, 70):
        x = rng.standard_normal((1, seq, sw.in_features)).astype(np.float32)
        got = request.infer([x])[0]
        np.testing.assert_array_equal(got, library.spmm(x, sw, quant=quant))
    assert library.load_checks() == loaded
