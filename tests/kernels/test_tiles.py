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
    "'avx2_bert_pair': l.tile_tokens(768 + 3072, isa='avx2'), 'describe': c.describe()}))"
)


def test_cache_sizes_are_read_at_load_and_can_be_faked(kernels):
    """PRUNEOFA_KERNELS_CACHE_SIZES stands in for the CPU's caches (a Zen 3 here), in bytes or K/M; a
    malformed value is ignored (the CPU's own sizes are read)."""
    zen3 = _in_fresh_process({"PRUNEOFA_KERNELS_CACHE_SIZES": "32K,512K"}, PROBE)
    assert (zen3["l1d"], zen3["l2"], zen3["source"]) == (*ZEN3, "PRUNEOFA_KERNELS_CACHE_SIZES")
    assert zen3["avx2_bert_pair"] == 16 and zen3["forced"] == 0
    assert zen3["describe"] == "L1d 32 KiB, L2 512 KiB (PRUNEOFA_KERNELS_CACHE_SIZES)"
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
