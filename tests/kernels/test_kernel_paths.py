"""Every kernel path this CPU runs (scalar, avx2, avx512) against numpy, over random shapes and formats."""

from __future__ import annotations

import itertools
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import dense_reference, random_sparse, require_kernels, tolerance  # noqa: E402


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


@pytest.fixture
def each_isa(kernels):
    from pruneofa.kernels import library

    before = library.isa()
    yield library.supported_isas()
    library.set_isa(before)


SHAPES = [(1, 8, 1), (3, 13, 7), (17, 64, 9), (40, 100, 33), (65, 384, 24), (130, 96, 17)]
SPARSITIES = [0.0, 0.5, 0.9, 0.99, 1.0]


@pytest.mark.parametrize("fmt", ["csr", "block4", "block8", "int8-csr", "int8-block2"])
def test_fuzz_against_numpy(kernels, each_isa, fmt):
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(zlib.crc32(fmt.encode()))
    block = {"csr": 1, "block4": 4, "block8": 8, "int8-csr": 1, "int8-block2": 2}[fmt]
    int8 = fmt.startswith("int8")
    checked = 0
    for isa in each_isa:
        library.set_isa(isa)
        assert library.isa() == isa
        for (t, k, n), sparsity in itertools.product(SHAPES, SPARSITIES):
            k_block = max(block, k // block * block)  # block formats need K divisible by the block
            w = random_sparse(rng, n, k_block, sparsity, block)
            bias = rng.standard_normal(n).astype(np.float32) if (t + n) % 2 else None
            if int8:
                q, scales = formats.quantize_rows(w)
                sw = formats.pack(w, bias=bias, block=block, int8=q, scales=scales)
                w_eff = q.astype(np.float32) * scales[:, None]
            else:
                sw = formats.pack(w, bias=bias, block=block)
                w_eff = w
            assert sw.format == (
                f"int8-{'csr' if block == 1 else 'block'}" if int8 else ("csr" if block == 1 else "block")
            )
            np.testing.assert_array_equal(formats.densify(sw), w_eff)  # position for position
            x = rng.standard_normal((t, k_block)).astype(np.float32)
            got = library.spmm(x, sw, threads=1 + (t % 2))
            want = dense_reference(x, w_eff, bias)
            np.testing.assert_allclose(
                got, want, rtol=0, atol=tolerance(x, w_eff), err_msg=f"{isa} {t}x{k_block}->{n} {sparsity}"
            )
            checked += 1
    assert checked == len(each_isa) * len(SHAPES) * len(SPARSITIES)


def test_fused_gelu(kernels, each_isa):
    from math import erf, sqrt

    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(7)
    w = random_sparse(rng, 33, 40, 0.6)
    bias = rng.standard_normal(33).astype(np.float32)
    x = rng.standard_normal((70, 40)).astype(np.float32) * 2
    pre = dense_reference(x, w, bias).astype(np.float64)
    want = 0.5 * pre * (1 + np.vectorize(lambda v: erf(v / sqrt(2)))(pre))
    for isa in each_isa:
        library.set_isa(isa)
        got = library.spmm(x, formats.pack(w, bias=bias), activation="gelu")
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(x, w) + 2e-6, err_msg=isa)


def test_all_zero_and_empty_shapes(kernels, each_isa):
    from pruneofa.kernels import formats, library

    for isa in each_isa:
        library.set_isa(isa)
        bias = np.arange(5, dtype=np.float32)
        sw = formats.pack(np.zeros((5, 12), np.float32), bias=bias)
        assert sw.stored == 0
        y = library.spmm(np.ones((4, 12), np.float32), sw)
        np.testing.assert_array_equal(y, np.broadcast_to(bias, (4, 5)))
        y0 = library.spmm(np.ones((0, 12), np.float32), sw)
        assert y0.shape == (0, 5)


def test_choose_block_follows_the_zeros():
    from pruneofa.kernels import formats

    rng = np.random.default_rng(0)
    assert formats.choose_block(random_sparse(rng, 64, 64, 0.9, 4) != 0) == 4
    assert formats.choose_block(random_sparse(rng, 64, 64, 0.9, 8) != 0) == 8
    assert formats.choose_block(random_sparse(rng, 64, 64, 0.9, 1) != 0) == 1
    assert formats.choose_block(np.ones((4, 6), bool)) == 2  # dense: 6 is not divisible by 4 or 8


def test_invalid_structure_is_rejected(kernels):
    from pruneofa.kernels import formats, library

    sw = formats.pack(np.eye(4, dtype=np.float32))
    sw.col_idx = sw.col_idx.copy()
    sw.col_idx[0] = 7  # out of range
    with pytest.raises(ValueError):
        library.spmm(np.ones((2, 4), np.float32), sw)


@pytest.mark.parametrize(
    "first_fmt,second_fmt", [("csr", "csr"), ("block4", "int8-csr"), ("int8-block2", "block8")]
)
def test_fused_pair_against_numpy(kernels, each_isa, first_fmt, second_fmt):
    """spmm_pair (BERT's FFN: up + GELU, then down) against numpy, for token counts that give the fused
    path (whole tiles per thread) and the one-after-the-other path (too few tiles for the threads)."""
    from math import erf, sqrt

    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(zlib.crc32(f"{first_fmt}/{second_fmt}".encode()))

    def layer(n, k, fmt, sparsity):
        block = int(fmt[-1]) if fmt[-1].isdigit() else 1
        w = random_sparse(rng, n, k, sparsity, block)
        bias = rng.standard_normal(n).astype(np.float32)
        if fmt.startswith("int8"):
            q, scales = formats.quantize_rows(w)
            return formats.pack(w, bias=bias, block=block, int8=q, scales=scales), q * scales[:, None], bias
        return formats.pack(w, bias=bias, block=block), w, bias

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))))
    seen = set()
    for isa in each_isa:
        library.set_isa(isa)
        for tokens, threads, sparsity in [
            (1, 2, 0.9),
            (40, 1, 0.0),
            (64, 2, 0.99),
            (96, 2, 0.85),
            (130, 2, 1.0),
        ]:
            up, w1, b1 = layer(72, 48, first_fmt, sparsity)
            down, w2, b2 = layer(24, 72, second_fmt, sparsity)
            x = rng.standard_normal((tokens, 48)).astype(np.float32)
            hidden = gelu(dense_reference(x, w1, b1).astype(np.float64))
            want = hidden @ w2.astype(np.float64).T + b2
            got, fused = library.spmm_pair(x, up, down, threads=threads)
            seen.add(fused)
            # The second layer's own FP32 sums, plus the first's error (sums and the rational erf) carried
            # through the second's weights.
            carried = (tolerance(x, w1) + 2e-6) * float(np.abs(w2).sum(axis=1).max())
            atol = tolerance(hidden.astype(np.float32), w2) + carried
            np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{isa} {tokens} tokens")
            two = library.spmm(library.spmm(x, up, threads, "gelu"), down, threads)
            np.testing.assert_array_equal(got, two)  # the same arithmetic as two separate layers
    assert seen == {True, False}
    with pytest.raises(ValueError, match="do not chain"):
        library.spmm_pair(rng.standard_normal((3, 72)).astype(np.float32), down, up)
    with pytest.raises(ValueError, match="do not end in the layer's 48 inputs"):
        library.spmm_pair(rng.standard_normal((3, 72)).astype(np.float32), up, down)
    with pytest.raises(ValueError, match="do not end in the layer's 48 inputs"):
        library.spmm(rng.standard_normal((3, 40)).astype(np.float32), up)
