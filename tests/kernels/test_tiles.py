"""Token tiles from the CPU's caches, threads split by tokens, and outputs that do not depend on either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import random_sparse, require_kernels  # noqa: E402

ZEN3 = (32 * 1024, 512 * 1024)
ZEN5 = (48 * 1024, 1024 * 1024)


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


@pytest.mark.parametrize(
    "cache,isa,rows,expected",
    [
        # Zen 5 (1 MB L2): the widths measured best there, at MiniLM's shapes (384, 1536, pair 384 + 1536)
        (ZEN5, "avx512", 384, 64),
        (ZEN5, "avx512", 1536, 64),
        (ZEN5, "avx512", 384 + 1536, 64),
        (ZEN5, "avx2", 384 + 1536, 32),
        # BERT-Base's 3072-wide tiles: 64 AVX-512 tokens would fill 768 KB of the 1 MB
        (ZEN5, "avx512", 3072, 32),
        (ZEN5, "avx512", 768 + 3072, 32),
        (ZEN5, "avx2", 768 + 3072, 32),
        # Zen 3 (512 KB L2): MiniLM's pair tile still fits at 32 tokens, BERT-Base's does not
        (ZEN3, "avx2", 384, 32),
        (ZEN3, "avx2", 384 + 1536, 32),
        (ZEN3, "avx2", 3072, 16),
        (ZEN3, "avx2", 768 + 3072, 16),
        # never narrower than 16 tokens, never wider than 4 vectors
        ((32 * 1024, 64 * 1024), "avx2", 768 + 3072, 16),
        ((64 * 1024, 64 * 1024 * 1024), "avx512", 384, 64),
        ((64 * 1024, 64 * 1024 * 1024), "avx2", 384, 32),
        # unknown caches: today's constants
        ((0, 0), "avx512", 3072, 64),
        ((0, 0), "avx2", 3072, 32),
        ((0, 0), "scalar", 3072, 32),
    ],
)
def test_tile_width_from_cache_sizes(kernels, cache, isa, rows, expected):
    assert kernels.library.tile_tokens(rows, isa=isa, cache=cache) == expected


def _int8_lanes() -> int:
    """The lanes of the INT8 route the active ISA runs here: 16 tokens per vpdpbusd on AVX512-VNNI, else 8."""
    from pruneofa.kernels import library

    return 16 if library.int8_route() == "avx512vnni" else 8


@pytest.mark.parametrize(
    "cache,rows,hidden,by_lanes",
    [
        # INT8 compute holds 4 * ceil(K / 4) + 8 bytes per token (quads, step, zero point), a quarter of the
        # FP32 tile: BERT-Base's 3072-wide layer keeps 4 vectors on a Zen 3, where FP32 drops to 16 tokens
        (ZEN3, 3072, 0, {16: 64, 8: 32}),
        (ZEN5, 3072, 0, {16: 64, 8: 32}),
        ((32 * 1024, 256 * 1024), 3072, 0, {16: 32, 8: 32}),  # 64 x 3080 B > 128 KB
        ((32 * 1024, 64 * 1024), 384, 0, {16: 64, 8: 32}),  # 64 x 392 B = 25 KB <= 32 KB (FP32: 16)
        ((32 * 1024, 32 * 1024), 384, 0, {16: 32, 8: 32}),  # 25 KB > 16 KB
        ((32 * 1024, 64 * 1024), 3072, 0, {16: 16, 8: 16}),  # never narrower than 16 tokens
        ((64 * 1024, 64 * 1024 * 1024), 3, 0, {16: 64, 8: 32}),  # never wider than 4 vectors
        ((0, 0), 3072, 0, {16: 64, 8: 32}),  # unknown caches
        # a fused INT8 pair: the first layer's INT8 tile, the FP32 intermediate and its INT8 tile
        (ZEN5, 384, 1536, {16: 64, 8: 32}),  # 392 + 6144 + 1544 B per token: 64 tokens fill 505 of 512 KiB
        ((48 * 1024, 1000 * 1024), 384, 1536, {16: 32, 8: 32}),  # ... more than 500 KiB
        (ZEN3, 768, 3072, {16: 16, 8: 16}),
    ],
)
def test_int8_tile_width_from_cache_sizes(kernels, each_isa, cache, rows, hidden, by_lanes):
    """INT8 compute's tile from the same rule as FP32's, on the INT8 route's lanes and its bytes per token."""
    from pruneofa.kernels import library

    for isa in each_isa:
        library.set_isa(isa)
        width = library.tile_tokens(rows, isa=isa, cache=cache, int8=True, hidden=hidden)
        assert width == by_lanes[_int8_lanes()], f"{isa} (route {library.int8_route()})"


def test_tile_width_of_an_unknown_isa_is_an_error(kernels):
    with pytest.raises(ValueError, match="unknown ISA"):
        kernels.library.tile_tokens(384, isa="sse9", cache=ZEN5)


def _in_fresh_process(env: dict[str, str], code: str) -> dict:
    """Runs ``code`` (which prints one JSON line) where the library loads with ``env`` added."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBE = (
    "import json; from pruneofa.kernels import library as l; c = l.cache_sizes(); "
    "print(json.dumps({'l1d': c.l1d, 'l2': c.l2, 'source': c.source, 'forced': l.tile_forced(), "
    "'avx2_bert_pair': l.tile_tokens(768 + 3072, isa='avx2'), 'describe': c.describe(), "
    "'int8_bert': l.tile_tokens(3072, int8=True), 'int8_lanes': 16 if l.int8_route() == 'avx512vnni' else 8}))"
)


def test_cache_sizes_are_read_at_load_and_can_be_faked(kernels):
    """PRUNEOFA_KERNELS_CACHE_SIZES stands in for the CPU's caches (a Zen 3 here), in bytes or K/M; a
    malformed value is ignored (the CPU's own sizes are read)."""
    zen3 = _in_fresh_process({"PRUNEOFA_KERNELS_CACHE_SIZES": "32K,512K"}, PROBE)
    assert (zen3["l1d"], zen3["l2"], zen3["source"]) == (*ZEN3, "PRUNEOFA_KERNELS_CACHE_SIZES")
    assert zen3["avx2_bert_pair"] == 16 and zen3["forced"] == 0
    assert zen3["describe"] == "L1d 32 KiB, L2 512 KiB (PRUNEOFA_KERNELS_CACHE_SIZES)"
    assert zen3["int8_bert"] == 4 * zen3["int8_lanes"]  # 3080 B per token: 4 vectors fit half of 512 KB
    zen5 = _in_fresh_process({"PRUNEOFA_KERNELS_CACHE_SIZES": f"{ZEN5[0]},{ZEN5[1]}"}, PROBE)
    assert (zen5["l1d"], zen5["l2"]) == ZEN5 and zen5["avx2_bert_pair"] == 32
    own = _in_fresh_process({"PRUNEOFA_KERNELS_CACHE_SIZES": "lots"}, PROBE)
    assert own["source"] in ("sysfs", "sysconf", "unknown")
    assert (own["l2"] > 0) == (own["source"] != "unknown")


def test_tile_override_wins(kernels):
    forced = _in_fresh_process(
        {"PRUNEOFA_KERNELS_TILE": "20", "PRUNEOFA_KERNELS_CACHE_SIZES": "32K,512K"}, PROBE
    )
    assert forced["forced"] == 20 and forced["avx2_bert_pair"] == 24  # rounded up to the lanes
    assert forced["int8_bert"] == (32 if forced["int8_lanes"] == 16 else 24)  # INT8 compute too


@pytest.fixture
def each_isa(kernels):
    """Every ISA path this CPU runs (the active one restored after)."""
    before = kernels.library.isa()
    yield kernels.library.supported_isas()
    kernels.library.set_isa(before)


@pytest.fixture
def restore_tile(kernels):
    yield
    kernels.library.set_tile_tokens(0)


@pytest.mark.parametrize("tokens", [1, 7, 33, 100, 129, 200])
def test_outputs_do_not_depend_on_threads_or_tiles(kernels, each_isa, restore_tile, tokens):
    """Threads get token ranges cut at multiples of the lanes (100 tokens on 2 threads: 48 / 52 on AVX2),
    and every token's sum is formed the same way whatever range or tile holds it: the same bits on 1, 2
    and 3 threads and at every tile width, for one layer and a fused pair."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(tokens)
    up = formats.pack(random_sparse(rng, 96, 40, 0.8), bias=rng.standard_normal(96).astype(np.float32))
    down = formats.pack(random_sparse(rng, 24, 96, 0.9, block=4), block=4)
    x = rng.standard_normal((tokens, 40)).astype(np.float32)
    for isa in each_isa:
        library.set_isa(isa)
        library.set_tile_tokens(0)
        one = library.spmm(x, up, threads=1, activation="gelu")
        pair_one, _ = library.spmm_pair(x, up, down, threads=1)
        for tile in (0, 16, 32, 64):
            library.set_tile_tokens(tile)
            for threads in (1, 2, 3):
                np.testing.assert_array_equal(library.spmm(x, up, threads=threads, activation="gelu"), one)
                pair, _ = library.spmm_pair(x, up, down, threads=threads)
                np.testing.assert_array_equal(pair, pair_one, err_msg=f"{isa} tile {tile} threads {threads}")


@pytest.mark.parametrize("tokens", [1, 7, 33, 100, 129, 200])
def test_int8_outputs_do_not_depend_on_threads_or_tiles(kernels, each_isa, restore_tile, tokens):
    """INT8 compute quantizes per token and sums in int32: the same bits on 1, 2 and 3 threads and at every
    tile width, dynamic and static, as for FP32."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(100 + tokens)
    q = (rng.integers(-128, 128, (48, 72)) * np.repeat(rng.random((48, 18)) > 0.7, 4, axis=1)).astype(np.int8)
    sw = formats.pack_int8_1x4(q, (0.01 + 0.01 * rng.random(48)).astype(np.float32), rng.standard_normal(48))
    x = (rng.standard_normal((tokens, 72)) * 3).astype(np.float32)
    for isa in each_isa:
        library.set_isa(isa)
        for quant in (library.ActQuant("dynamic"), library.ActQuant("static", 0.05, 100)):
            library.set_tile_tokens(0)
            one = library.spmm(x, sw, threads=1, activation="gelu", quant=quant)
            for tile in (0, 16, 32, 64):
                library.set_tile_tokens(tile)
                for threads in (1, 2, 3):
                    got = library.spmm(x, sw, threads=threads, activation="gelu", quant=quant)
                    np.testing.assert_array_equal(
                        got, one, err_msg=f"{isa} {quant.mode} tile {tile} threads {threads}"
                    )


def test_report_names_the_tile_width_and_why(kernels):
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(9)
    x = ops.parameter([-1, -1, 40], np.float32, name="x")
    up = ops.matmul(x, ops.constant(random_sparse(rng, 96, 40, 0.9)), False, True)
    up.set_friendly_name("up")
    down = ops.matmul(up, ops.constant(random_sparse(rng, 40, 96, 0.9)), False, True)
    down.set_friendly_name("down")
    model = ov.Model([down.output(0)], [x])
    report = kernels.rewrite(model, mode="on")
    widths = {layer.name: layer.tile_tokens for layer in report.layers}
    expected = kernels.library.tile_tokens(40 + 96)  # the fused pair's tile: in + hidden floats per token
    assert widths == {"up": expected, "down": expected}
    cache = kernels.library.cache_sizes()
    assert report.tiles is not None and cache.describe() in report.tiles
    assert f"tiles of {expected} tokens" in report.summary() and report.to_dict()["tiles"] == report.tiles


def test_report_names_the_int8_tile_width(kernels):
    """INT8-compute layers report the width their node runs with too: a fused pair of them the width of its
    three tiles (the input's INT8 tile, the FP32 intermediate, its INT8 copy)."""
    import openvino as ov
    import openvino.opset13 as ops
    from test_int8_compute import int8_1x4_weight
    from test_int8_op import int8_weight_output, linear

    rng = np.random.default_rng(11)
    x = ops.parameter([-1, -1, 40], np.float32, name="x")
    up = linear(x, int8_weight_output(*int8_1x4_weight(rng, 96, 40, 0.8)), gelu=True)
    up.input_value(0).get_node().set_friendly_name("up")  # the MatMul under the Gelu
    down = linear(up, int8_weight_output(*int8_1x4_weight(rng, 24, 96, 0.8)))
    down.set_friendly_name("down")
    alone = linear(x, int8_weight_output(*int8_1x4_weight(rng, 32, 40, 0.8)))
    alone.set_friendly_name("alone")
    report = kernels.rewrite(ov.Model([down.output(0), alone.output(0)], [x]), mode="on")
    assert {layer.name: layer.activation_quant for layer in report.layers} == dict.fromkeys(
        ["up", "down", "alone"], "dynamic"
    )
    assert {layer.name: layer.fused_kind for layer in report.layers}["down"] == "pair"
    widths = {layer.name: layer.tile_tokens for layer in report.layers}
    tile = kernels.library.tile_tokens
    pair = tile(40, int8=True, hidden=96)
    assert widths == {"up": pair, "down": pair, "alone": tile(40, int8=True)}
