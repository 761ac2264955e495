"""INT8 compute (u8 activations x INT8 1x4 blocks) and 4x1 FP32 blocks on every kernel path this CPU runs,
against numpy references that quantize exactly as the kernels are specified to."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_helpers import dense_reference, random_sparse, require_kernels, tolerance  # noqa: E402

# Which kernel ISA runs which INT8 route, when the CPU has that route's instructions.
ROUTE_ISA = {"scalar": "scalar", "avx2": "avx2", "avxvnni": "avx2", "avx512vnni": "avx512"}


@pytest.fixture(scope="module")
def kernels():
    return require_kernels()


@pytest.fixture
def restore_isa(kernels):
    from pruneofa.kernels import library

    before = library.isa()
    yield
    library.set_isa(before)


def use_route(route: str) -> int:
    """Switch to the ISA that runs ``route`` and return its activation levels, or skip with the reason."""
    from pruneofa.kernels import library

    isa = ROUTE_ISA[route]
    if isa not in library.supported_isas():
        pytest.skip(f"this CPU has no {isa} (needed by the {route} INT8 route)")
    library.set_isa(isa)
    if library.int8_route() != route:
        pytest.skip(f"the {isa} path runs the {library.int8_route()} INT8 route on this CPU, not {route}")
    return int(library.int8_levels())


def int8_1x4_weight(rng, n: int, k: int, sparsity: float, edge: int | None = None):
    """INT8 [n, k] values in 4-aligned 1x4 blocks (zero past k), per-row scales; some rows empty."""
    slots = -(-k // 4)
    keep = rng.random((n, slots)) >= sparsity
    if n > 3:
        keep[n // 3] = False
    q = rng.integers(-128, 128, (n, slots * 4)) if edge is None else np.full((n, slots * 4), edge)
    q = (q * np.repeat(keep, 4, axis=1))[:, :k].astype(np.int8)
    scales = (0.001 + 0.01 * rng.random(n)).astype(np.float32)
    return q, scales


def quantize_reference(x: np.ndarray, levels: int, static: tuple[float, int] | None):
    """Per token (or static) u8 quantization as docs/kernels.md specifies it; float32 arithmetic throughout."""
    x = x.astype(np.float32)
    lv = np.float32(levels)
    if static is None:
        lo = np.minimum(x.min(axis=1), np.float32(0))
        hi = np.maximum(x.max(axis=1), np.float32(0))
        step = ((hi - lo) / lv).astype(np.float32)
        step = np.where(step > 0, step, np.float32(1)).astype(np.float32)
        zero = np.clip(np.rint(-lo / step), 0, levels).astype(np.int64)
    else:
        scale, zp = static
        if levels == 255:
            step_s, zero_s = np.float32(scale), zp
        else:
            step_s = np.float32(scale) * (np.float32(255) / lv)
            zero_s = int(np.clip(np.rint(np.float32(zp) * (lv / np.float32(255))), 0, levels))
        step = np.full(x.shape[0], step_s, np.float32)
        zero = np.full(x.shape[0], zero_s, np.int64)
    inv = (np.float32(1) / step).astype(np.float32)
    v = np.clip((x * inv[:, None]).astype(np.float32), -1024, 1024)
    q = np.clip(np.rint(v).astype(np.int64) + zero[:, None], 0, levels)
    return q, step, zero


def int8_reference(x, q_w, w_scales, bias, levels, static=None, gelu=False):
    q, step, zero = quantize_reference(x, levels, static)
    acc = (q - zero[:, None]) @ q_w.astype(np.int64).T  # exact
    y = acc.astype(np.float64) * step[:, None].astype(np.float64) * w_scales[None, :].astype(np.float64)
    if bias is not None:
        y = y + bias
    if gelu:
        from math import erf, sqrt

        y = 0.5 * y * (1 + np.vectorize(lambda v: erf(v / sqrt(2)))(y))
    bound = (np.abs(q - zero[:, None]) @ np.abs(q_w.astype(np.int64)).T) * step[:, None] * w_scales[None, :]
    return y, 1e-5 * (bound + (0 if bias is None else np.abs(bias))) + 1e-6


SHAPES = [(1, 4, 1), (3, 5, 7), (17, 13, 9), (40, 100, 33), (65, 257, 24), (130, 96, 17), (200, 64, 16)]
SPARSITIES = [0.0, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("route", list(ROUTE_ISA))
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_compute_against_numpy(kernels, restore_isa, route, mode):
    from pruneofa.kernels import formats, library

    use_route(route)
    rng = np.random.default_rng(len(route) * 7 + len(mode))
    for (t, k, n), sparsity in itertools.product(SHAPES, SPARSITIES):
        q_w, w_scales = int8_1x4_weight(rng, n, k, sparsity)
        bias = rng.standard_normal(n).astype(np.float32) if (t + n) % 2 else None
        sw = formats.pack_int8_1x4(q_w, w_scales, bias)
        assert sw.format == "int8-1x4" and sw.in_features == k
        np.testing.assert_array_equal(formats.densify(sw), q_w.astype(np.float32) * w_scales[:, None])
        x = (rng.standard_normal((t, k)) * 2 + 0.5).astype(np.float32)
        static = (0.03, 90) if mode == "static" else None
        quant = library.ActQuant(mode, *(static or (0.0, 0)))
        gelu = n % 2 == 1
        got = library.spmm(x, sw, threads=1 + t % 2, activation="gelu" if gelu else "none", quant=quant)
        want, tol = int8_reference(x, q_w, w_scales, bias, library.int8_levels(q_w), static, gelu)
        assert np.all(np.abs(got - want) <= tol + (1e-6 * (np.abs(want) + 1) if gelu else 0)), (
            f"{route} {mode} {t}x{k}->{n} {sparsity}: max error {np.abs(got - want).max()}"
        )


@pytest.mark.parametrize("route", list(ROUTE_ISA))
@pytest.mark.parametrize("weight", [127, -128, 64, -64, 65])
def test_int8_saturation_edge(kernels, restore_isa, route, weight):
    """The largest activation times all-equal weights over long rows: the exact int32 sum, no int16
    saturation in vpmaddubsw. On avx2 the activations keep 7 bits (127) where a weight exceeds 64 and get 8
    bits (255) where every weight stays within [-64, 64] (NNCF's overflow fix): 255 x 64 x 2 fits int16."""
    from pruneofa.kernels import formats, library

    use_route(route)
    k, n, t = 1024, 16, 33
    q_w = np.full((n, k), weight, np.int8)
    levels = library.int8_levels(q_w)
    assert levels == (127 if route == "avx2" and abs(weight) > 64 else 255), (route, weight, levels)
    w_scales = np.ones(n, np.float32)
    sw = formats.pack_int8_1x4(q_w, w_scales)
    for quant, x_value in [(library.ActQuant("dynamic"), 3.0), (library.ActQuant("static", 1.0, 0), 300.0)]:
        x = np.full((t, k), x_value, np.float32)
        got = library.spmm(x, sw, quant=quant)
        step = 3.0 / levels if quant.mode == "dynamic" else 255.0 / levels
        want = levels * weight * k * np.float32(step)
        np.testing.assert_allclose(got, np.full((t, n), want), rtol=1e-6, err_msg=route)


def test_int8_all_zero_and_empty(kernels, restore_isa):
    from pruneofa.kernels import formats, library

    for isa in library.supported_isas():
        library.set_isa(isa)
        sw = formats.pack_int8_1x4(
            np.zeros((9, 13), np.int8), np.ones(9, np.float32), np.arange(9, dtype=np.float32)
        )
        assert sw.stored == 0
        x = np.random.default_rng(0).standard_normal((5, 13)).astype(np.float32)
        got = library.spmm(x, sw, quant=library.ActQuant("dynamic"))
        np.testing.assert_array_equal(got, np.broadcast_to(np.arange(9, dtype=np.float32), (5, 9)))
        zeros = library.spmm(np.zeros((3, 13), np.float32), sw, quant=library.ActQuant("dynamic"))
        np.testing.assert_array_equal(zeros, np.broadcast_to(np.arange(9, dtype=np.float32), (3, 9)))


def test_int8_compute_close_to_fp32(kernels):
    """Dynamic per-token INT8 compute stays within quantization error of the FP32 product: per output, at
    most half an activation step times the row's absolute weight sum, plus the float error."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(3)
    q_w, w_scales = int8_1x4_weight(rng, 64, 384, 0.9)
    sw = formats.pack_int8_1x4(q_w, w_scales)
    x = rng.standard_normal((128, 384)).astype(np.float32)
    w = q_w.astype(np.float32) * w_scales[:, None]
    got = library.spmm(x, sw, quant=library.ActQuant("dynamic"))
    levels = library.int8_levels(q_w)
    step = (np.maximum(x.max(axis=1), 0) - np.minimum(x.min(axis=1), 0)) / levels
    bound = 0.5 * step[:, None] * np.abs(w).sum(axis=1)[None, :] * 1.001 + 1e-5
    assert np.all(np.abs(got - dense_reference(x, w, None)) <= bound)


def test_int8_refused_layouts(kernels):
    from pruneofa.kernels import formats, library

    q_w, w_scales = int8_1x4_weight(np.random.default_rng(1), 8, 16, 0.5)
    x = np.ones((2, 16), np.float32)
    block2 = formats.pack(q_w.astype(np.float32), block=2, int8=q_w, scales=w_scales)
    with pytest.raises(ValueError, match="invalid sparse weight"):
        library.spmm(x, block2, quant=library.ActQuant("dynamic"))
    sw = formats.pack_int8_1x4(q_w, w_scales)
    with pytest.raises(ValueError, match="invalid sparse weight"):
        library.spmm(x, sw, quant=library.ActQuant("static", 0.0, 0))
    with pytest.raises(ValueError, match="invalid sparse weight"):
        library.spmm(x, sw, quant=library.ActQuant("static", 1.0, 256))
    with pytest.raises(ValueError, match="must be one of"):
        library.ActQuant("int4")


@pytest.mark.parametrize(
    "modes", [("dynamic", "dynamic"), ("dynamic", "static"), ("static", "dynamic"), ("static", "static")]
)
def test_int8_fused_pair_against_two_calls(kernels, restore_isa, modes):
    """A pair of INT8-compute layers (up + GELU, then down) fuses: per thread and token tile the up layer's
    outputs go into a transposed FP32 tile, quantized per token (or statically) for the down layer. The same
    bits as two separate calls, each checked against numpy, whether it fuses (each thread its own tokens) or
    not (too few tokens for the threads); a hidden size off the 4-input quads (62)."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(5 + len(modes[0]) * 3 + len(modes[1]))
    q1, s1 = int8_1x4_weight(rng, 62, 40, 0.7)
    q2, s2 = int8_1x4_weight(rng, 24, 62, 0.5)
    b1, b2 = rng.standard_normal(62).astype(np.float32), rng.standard_normal(24).astype(np.float32)
    first, second = formats.pack_int8_1x4(q1, s1, b1), formats.pack_int8_1x4(q2, s2, b2)
    statics = {"dynamic": None, "static": (0.05, 10)}
    quants = [library.ActQuant(mode, *(statics[mode] or (0.0, 0))) for mode in modes]
    seen = set()
    for isa in library.supported_isas():
        library.set_isa(isa)
        for tokens, threads in [(1, 2), (17, 1), (70, 2), (129, 3), (200, 2)]:
            x = (rng.standard_normal((tokens, 40)) * 2).astype(np.float32)
            h = library.spmm(x, first, activation="gelu", quant=quants[0])
            want = library.spmm(h, second, quant=quants[1])
            ref_h, tol_h = int8_reference(
                x, q1, s1, b1, library.int8_levels(q1), statics[modes[0]], gelu=True
            )
            assert np.all(np.abs(h - ref_h) <= tol_h + 1e-6 * (np.abs(ref_h) + 1)), isa
            ref, tol = int8_reference(h, q2, s2, b2, library.int8_levels(q2), statics[modes[1]])
            assert np.all(np.abs(want - ref) <= tol), isa
            got, fused = library.spmm_pair(
                x, first, second, threads=threads, first_quant=quants[0], second_quant=quants[1]
            )
            np.testing.assert_array_equal(
                got, want, err_msg=f"{isa} {modes} {tokens} tokens on {threads} threads"
            )
            seen.add(fused)
            if threads == 1 or tokens >= 32 * threads:
                assert fused, f"{isa}: {tokens} tokens on {threads} threads did not fuse"
    assert seen == {True, False}  # both paths ran


def test_mixed_pair_runs_one_after_the_other(kernels, restore_isa):
    """An FP32 layer feeding an INT8-compute layer (or the reverse) is not fused: the same bits as two calls."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(6)
    q1, s1 = int8_1x4_weight(rng, 64, 40, 0.7)
    q2, s2 = int8_1x4_weight(rng, 24, 64, 0.5)
    first, second = formats.pack_int8_1x4(q1, s1), formats.pack_int8_1x4(q2, s2)
    dyn, none = library.ActQuant("dynamic"), library.ActQuant()
    for isa in library.supported_isas():
        library.set_isa(isa)
        x = rng.standard_normal((70, 40)).astype(np.float32)
        for qa, qb in [(none, dyn), (dyn, none)]:
            want = library.spmm(library.spmm(x, first, activation="gelu", quant=qa), second, quant=qb)
            got, fused = library.spmm_pair(x, first, second, threads=1, first_quant=qa, second_quant=qb)
            np.testing.assert_array_equal(got, want)
            assert not fused


# ---- 4 x 1 FP32 blocks ---------------------------------------------------------------------------


def rows4_weight(rng, n: int, k: int, sparsity: float) -> np.ndarray:
    keep = rng.random((n // 4, k)) >= sparsity
    if n >= 8:
        keep[1] = False  # an empty row block
    return (rng.standard_normal((n, k)) * np.repeat(keep, 4, axis=0)).astype(np.float32)


@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_4x1_against_numpy(kernels, restore_isa, activation):
    from math import erf, sqrt

    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(11)
    for isa in library.supported_isas():
        library.set_isa(isa)
        for (t, k, n), sparsity in itertools.product(
            [(1, 8, 4), (17, 13, 12), (65, 100, 36), (130, 96, 16)], SPARSITIES
        ):
            w = rows4_weight(rng, n, k, sparsity)
            bias = rng.standard_normal(n).astype(np.float32) if t % 2 else None
            sw = formats.pack_4x1(w, bias)
            assert sw.format == "block4x1"
            np.testing.assert_array_equal(formats.densify(sw), w)
            x = rng.standard_normal((t, k)).astype(np.float32)
            got = library.spmm(x, sw, threads=1 + t % 2, activation=activation)
            want = dense_reference(x, w, bias).astype(np.float64)
            tol = tolerance(x, w)
            if activation == "gelu":
                want = 0.5 * want * (1 + np.vectorize(lambda v: erf(v / sqrt(2)))(want))
                tol += 1e-6 * (np.abs(want) + 1)
            assert np.all(np.abs(got - want) <= tol), f"{isa} {t}x{k}->{n} {sparsity}"


def test_4x1_pair_and_split(kernels, restore_isa):
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(12)
    first = formats.pack_4x1(rows4_weight(rng, 64, 32, 0.7), rng.standard_normal(64).astype(np.float32))
    second = formats.pack_4x1(rows4_weight(rng, 16, 64, 0.5))
    parts = [formats.pack_4x1(rows4_weight(rng, 16, 32, 0.6)) for _ in range(3)]
    stacked = formats.stack_rows(parts)
    assert stacked.format == "block4x1"
    for back, part in zip(formats.split_rows(stacked, 3), parts, strict=True):
        np.testing.assert_array_equal(formats.densify(back), formats.densify(part))
    for isa in library.supported_isas():
        library.set_isa(isa)
        x = rng.standard_normal((200, 32)).astype(np.float32)
        want = library.spmm(library.spmm(x, first, activation="gelu"), second)
        for threads in (1, 2):
            got, _ = library.spmm_pair(x, first, second, threads=threads)
            np.testing.assert_array_equal(got, want)
        whole = library.spmm(x, stacked)
        np.testing.assert_allclose(
            whole, np.concatenate([library.spmm(x, p) for p in parts], axis=1), rtol=0, atol=1e-6
        )


# ---- choosing the format -------------------------------------------------------------------------


def test_choose_layout():
    from pruneofa.kernels import formats

    rng = np.random.default_rng(2)
    unstructured = random_sparse(rng, 32, 64, 0.9) != 0
    assert formats.choose_layout(unstructured, int8=True) == "int8-csr"
    assert formats.choose_layout(unstructured, int8=False) == "csr"
    blocks_1x4 = random_sparse(rng, 32, 64, 0.9, block=4) != 0
    assert formats.choose_layout(blocks_1x4, int8=True) == "int8-1x4"
    assert formats.choose_layout(blocks_1x4, int8=False) == "block"
    blocks_4x1 = rows4_weight(rng, 32, 64, 0.9) != 0
    assert formats.choose_layout(blocks_4x1, int8=False) == "block4x1"
    assert formats.choose_layout(blocks_4x1, int8=True) == "block4x1"
    odd_k = np.zeros((8, 10), bool)
    odd_k[:, 9] = True  # the last block reaches past K = 10: 3 of its 4 stored values are padding
    assert not formats.blocked_1x4(odd_k)
    odd_k[:, 8] = True  # 2 of 4: at the limit
    assert formats.blocked_1x4(odd_k)
    # INT8 rounding leaves zeros inside kept blocks: still 1 x 4 (up to half of each block).
    rounded = blocks_1x4 & (rng.random(blocks_1x4.shape) > 0.3)
    assert formats.choose_layout(rounded, int8=True) == "int8-1x4"


def test_avx2_route_takes_8_bit_activations_where_weights_fit_7_bits(kernels, restore_isa):
    """NNCF's overflow fix (what calibrate writes on CPUs without VNNI) keeps weights within [-64, 64]: the
    avx2 route then quantizes activations to 8 bits like OpenVINO's INT8 GEMM and the scalar reference, the
    same result; a layer with one weight of 65 goes back to 7 bits. A fused pair whose layers differ there
    runs them one after the other, with each layer's own levels."""
    from pruneofa.kernels import formats, library

    use_route("avx2")
    rng = np.random.default_rng(11)
    q_w, w_scales = int8_1x4_weight(rng, 48, 96, 0.6)
    fitted = np.clip(q_w // 2, -64, 64).astype(np.int8)
    x = (rng.standard_normal((40, 96)) * 2).astype(np.float32)
    for quant, static in [
        (library.ActQuant("dynamic"), None),
        (library.ActQuant("static", 0.03, 90), (0.03, 90)),
    ]:
        got = library.spmm(x, formats.pack_int8_1x4(fitted, w_scales), quant=quant)
        want, tol = int8_reference(x, fitted, w_scales, None, 255, static)
        assert library.int8_levels(fitted) == 255 and np.all(np.abs(got - want) <= tol)
        library.set_isa("scalar")
        scalar = library.spmm(x, formats.pack_int8_1x4(fitted, w_scales), quant=quant)
        library.set_isa("avx2")
        np.testing.assert_allclose(got, scalar, rtol=1e-6, atol=1e-6)
        wide = fitted.copy()
        wide[0, np.flatnonzero(wide[0])[0]] = 65
        got = library.spmm(x, formats.pack_int8_1x4(wide, w_scales), quant=quant)
        want, tol = int8_reference(x, wide, w_scales, None, 127, static)
        assert library.int8_levels(wide) == 127 and np.all(np.abs(got - want) <= tol)
    up, down = formats.pack_int8_1x4(fitted, w_scales), formats.pack_int8_1x4(q_w[:, :48], w_scales)
    dyn = library.ActQuant("dynamic")
    got, fused = library.spmm_pair(x, up, down, threads=1, first_quant=dyn, second_quant=dyn)
    assert not fused
    h = library.spmm(x, up, activation="gelu", quant=dyn)
    np.testing.assert_array_equal(got, library.spmm(h, down, quant=dyn))


@pytest.mark.parametrize("route", list(ROUTE_ISA))
def test_static_multiplier_quantizes_the_scaled_activations(kernels, restore_isa, route):
    """SmoothQuant's per-input factors folded into the op (``ActQuant.multiplier``): the same bits as the
    activations multiplied first, then quantized statically (checked against numpy too), on the vector
    quads, the 8-token transposes and the odd-K tail alike."""
    from pruneofa.kernels import formats, library

    use_route(route)
    rng = np.random.default_rng(11 + len(route))
    for t, k, n in [(1, 4, 16), (9, 13, 7), (40, 100, 33), (65, 257, 24)]:
        q_w, w_scales = int8_1x4_weight(rng, n, k, 0.6)
        sw = formats.pack_int8_1x4(q_w, w_scales, rng.standard_normal(n).astype(np.float32))
        x = (rng.standard_normal((t, k)) * 2).astype(np.float32)
        factors = rng.uniform(0.2, 4.0, k).astype(np.float32)
        with_factors = library.ActQuant("static", 0.03, 90, factors)
        got = library.spmm(x, sw, threads=1 + t % 2, quant=with_factors)
        scaled = (x * factors).astype(np.float32)
        np.testing.assert_array_equal(
            got, library.spmm(scaled, sw, quant=library.ActQuant("static", 0.03, 90))
        )
        want, tol = int8_reference(scaled, q_w, w_scales, sw.bias, library.int8_levels(q_w), (0.03, 90))
        assert np.all(np.abs(got - want) <= tol), f"{route} {t}x{k}->{n}"
        assert np.abs(got - library.spmm(x, sw, quant=library.ActQuant("static", 0.03, 90))).max() > 0


def test_fused_pair_with_multipliers_against_two_calls(kernels, restore_isa):
    """Both layers of a pair with factors (the down layer's are SmoothQuant's after GELU): the fused tile
    path applies them per intermediate row and gives the bits of two separate calls."""
    from pruneofa.kernels import formats, library

    rng = np.random.default_rng(23)
    q1, s1 = int8_1x4_weight(rng, 64, 40, 0.7)
    q2, s2 = int8_1x4_weight(rng, 24, 64, 0.5)
    first = formats.pack_int8_1x4(q1, s1, rng.standard_normal(64).astype(np.float32))
    second = formats.pack_int8_1x4(q2, s2, rng.standard_normal(24).astype(np.float32))
    quants = [
        library.ActQuant("static", 0.05, 10, rng.uniform(0.5, 2.0, 40).astype(np.float32)),
        library.ActQuant("static", 0.02, 20, rng.uniform(0.5, 2.0, 64).astype(np.float32)),
    ]
    for isa in library.supported_isas():
        library.set_isa(isa)
        for tokens, threads in [(17, 1), (70, 2), (200, 2)]:
            x = (rng.standard_normal((tokens, 40)) * 2).astype(np.float32)
            want = library.spmm(
                library.spmm(x, first, activation="gelu", quant=quants[0]), second, quant=quants[1]
            )
            got, fused = library.spmm_pair(x, first, second, threads=threads, first_quant=quants[0],
                                           second_quant=quants[1])  # fmt: skip
            np.testing.assert_array_equal(got, want, err_msg=f"{isa}: {tokens} tokens on {threads} threads")
            assert fused or threads == 1


def test_a_multiplier_is_refused_where_it_does_not_apply(kernels):
    from pruneofa.kernels import formats, library

    with pytest.raises(ValueError, match="needs static activation quantization"):
        library.ActQuant("dynamic", multiplier=np.ones(8, np.float32))
    with pytest.raises(ValueError, match="must be finite"):
        library.ActQuant("static", 0.1, 0, np.array([1.0, np.inf], np.float32))
    q_w, w_scales = int8_1x4_weight(np.random.default_rng(0), 16, 8, 0.5)
    sw = formats.pack_int8_1x4(q_w, w_scales)
    with pytest.raises(ValueError, match="3 factors for 8 inputs"):
        library.spmm(np.ones((2, 8), np.float32), sw, quant=library.ActQuant("static", 0.1, 0, np.ones(3)))
