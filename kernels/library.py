"""Find (or build on first use) the extension library, register it on OpenVINO cores, ask it which ISA runs.

Why build on first use: a checkout where ``python -m pruneofa.kernels.build`` was never run should still
get sparse speed when a compiler is there. When there is none, or the build fails, one warning is logged
once per process and every caller falls back to dense execution: nothing raises, results stay right.

``PRUNEOFA_KERNELS_LIBRARY`` points at a prebuilt library (skips the cache and the build);
``PRUNEOFA_KERNELS_DISABLE=1`` behaves as if no library could be had (dense everywhere).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("pruneofa.kernels")

_lock = threading.Lock()
_state: dict[str, Any] = {"resolved": False, "path": None, "warned": False, "cdll": None}
_registered: weakref.WeakSet = weakref.WeakSet()  # cores the extension was added to


def _warn_once(message: str) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        logger.warning("pruneofa kernels unavailable, models run dense: %s", message)


def _resolve() -> Path | None:
    if os.environ.get("PRUNEOFA_KERNELS_DISABLE", "") not in ("", "0"):
        return None
    explicit = os.environ.get("PRUNEOFA_KERNELS_LIBRARY")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            _warn_once(f"PRUNEOFA_KERNELS_LIBRARY={explicit} does not exist")
            return None
        return path
    from pruneofa.kernels import build

    try:
        return build.cached_library() or build.build()
    except (build.BuildError, OSError, ImportError) as exc:
        _warn_once(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def library_path() -> Path | None:
    """The extension library for this OpenVINO (built on first call if needed), or None when unavailable."""
    with _lock:
        if not _state["resolved"]:
            _state["path"] = _resolve()
            _state["resolved"] = True
        return _state["path"]


def available() -> bool:
    """True when the extension can be registered (a library exists or was just built)."""
    return library_path() is not None


def reset() -> None:
    """Forget the resolved library and the warning (for tests that change the environment)."""
    with _lock:
        _state.update(resolved=False, path=None, warned=False, cdll=None)


def register(core: Any) -> bool:
    """Add the extension to ``core`` (an ``openvino.Core``); idempotent. False when unavailable."""
    path = library_path()
    if path is None:
        return False
    with _lock:
        if core in _registered:
            return True
        core.add_extension(str(path))
        _registered.add(core)
    return True


class _Layer(ctypes.Structure):
    """``pruneofa_layer`` in csrc/extension.cpp: one layer of :func:`spmm` / :func:`spmm_pair`."""

    _fields_ = [
        ("in_features", ctypes.c_int64),
        ("out_features", ctypes.c_int64),
        ("row_ptr", ctypes.c_void_p),
        ("col_idx", ctypes.c_void_p),
        ("n_blocks", ctypes.c_int64),
        ("values", ctypes.c_void_p),
        ("int8", ctypes.c_int32),
        ("block", ctypes.c_int32),
        ("scales", ctypes.c_void_p),
        ("bias", ctypes.c_void_p),
        ("activation", ctypes.c_int32),
        ("block_rows", ctypes.c_int32),
        ("act_quant", ctypes.c_int32),
        ("act_scale", ctypes.c_float),
        ("act_zero_point", ctypes.c_int32),
        ("act_multiplier", ctypes.c_void_p),
    ]


def _cdll() -> ctypes.CDLL | None:
    path = library_path()
    if path is None:
        return None
    with _lock:
        if _state["cdll"] is None:
            import openvino  # noqa: F401  (loads libopenvino first, so the library's dependencies resolve)

            lib = ctypes.CDLL(str(path))
            lib.pruneofa_kernels_isa.restype = ctypes.c_char_p
            lib.pruneofa_kernels_set_isa.argtypes = [ctypes.c_char_p]
            lib.pruneofa_kernels_isa_supported.argtypes = [ctypes.c_char_p]
            lib.pruneofa_kernels_set_tile.argtypes = [ctypes.c_int]
            lib.pruneofa_kernels_tile_forced.restype = ctypes.c_int
            lib.pruneofa_kernels_cache_sizes.argtypes = [ctypes.POINTER(ctypes.c_int64)] * 2
            lib.pruneofa_kernels_cache_sizes.restype = ctypes.c_char_p
            lib.pruneofa_kernels_tile_width.argtypes = [
                ctypes.c_int64,
                ctypes.c_char_p,
                ctypes.c_int64,
                ctypes.c_int64,
            ]
            lib.pruneofa_kernels_tile_width.restype = ctypes.c_int64
            lib.pruneofa_kernels_q8_tile_width.argtypes = [
                ctypes.c_int64,
                ctypes.c_int64,
                ctypes.c_char_p,
                ctypes.c_int64,
                ctypes.c_int64,
            ]
            lib.pruneofa_kernels_q8_tile_width.restype = ctypes.c_int64
            lib.pruneofa_kernels_load_checks.restype = ctypes.c_int64
            lib.pruneofa_kernels_int8_route.restype = ctypes.c_char_p
            lib.pruneofa_kernels_int8_levels.restype = ctypes.c_int
            p, i64, layer = ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(_Layer)
            lib.pruneofa_kernels_spmm.argtypes = [p, p, i64, layer, ctypes.c_int]
            lib.pruneofa_kernels_spmm.restype = ctypes.c_int
            lib.pruneofa_kernels_spmm_pair.argtypes = [p, p, i64, layer, layer, ctypes.c_int,
                                                       ctypes.POINTER(ctypes.c_int)]  # fmt: skip
            lib.pruneofa_kernels_spmm_pair.restype = ctypes.c_int
            _state["cdll"] = lib
        return _state["cdll"]


def isa() -> str | None:
    """The kernel path in use: "avx512", "avx2" or "scalar" (None when unavailable).

    Chosen when the library loads: the best this CPU runs, or ``PRUNEOFA_KERNELS_ISA`` when set and
    supported (an unsupported request falls back to the best, never to an illegal instruction)."""
    lib = _cdll()
    return lib.pruneofa_kernels_isa().decode() if lib is not None else None


def supported_isas() -> list[str]:
    lib = _cdll()
    if lib is None:
        return []
    return [
        name for name in ("scalar", "avx2", "avx512") if lib.pruneofa_kernels_isa_supported(name.encode())
    ]


def set_isa(name: str) -> None:
    """Switch the kernel path for the whole process (tests and benchmarks); ValueError if unsupported."""
    lib = _cdll()
    if lib is None or not lib.pruneofa_kernels_set_isa(name.encode()):
        raise ValueError(f"ISA {name!r} is not available here (supported: {supported_isas()})")


def int8_route() -> str | None:
    """The INT8-compute route the active path runs: "avx512vnni", "avxvnni", "avx2" (``vpmaddubsw``: 8-bit
    activations for weights within [-64, 64], else 7-bit) or "scalar" (None when unavailable)."""
    lib = _cdll()
    return lib.pruneofa_kernels_int8_route().decode() if lib is not None else None


WEIGHT_ABS_MAX_7BIT = (
    64  # the avx2 route's 8-bit activations need every |INT8 weight| of the layer at most this
)


def int8_levels(weights: np.ndarray | None = None) -> int | None:
    """The largest quantized activation on the active INT8 route: 255, or on "avx2" 127 — or 255 there too
    for a layer whose INT8 ``weights`` stay within [-64, 64] (NNCF's overflow fix writes such weights:
    ``vpmaddubsw`` cannot saturate on them, 255 x 64 x 2 < 32767)."""
    lib = _cdll()
    if lib is None:
        return None
    levels = int(lib.pruneofa_kernels_int8_levels())
    if (
        levels != 255
        and weights is not None
        and int(np.abs(weights.astype(np.int32)).max(initial=0)) <= WEIGHT_ABS_MAX_7BIT
    ):
        return 255
    return levels


def set_tile_tokens(tokens: int) -> None:
    """Force the token-tile width (tuning only; 0 restores the automatic choice)."""
    lib = _cdll()
    if lib is not None:
        lib.pruneofa_kernels_set_tile(int(tokens))


@dataclass(frozen=True)
class CacheSizes:
    """The per-core data caches the library read when it loaded (bytes; 0 when unknown), and from where:
    ``PRUNEOFA_KERNELS_CACHE_SIZES`` ("l1d,l2" in bytes or with K/M, for tests or a CPU that misreports),
    ``sysfs`` (cpu0's caches), ``sysconf`` or ``unknown``."""

    l1d: int
    l2: int
    source: str

    def describe(self) -> str:
        if self.l2 <= 0:
            return "cache sizes unknown"
        return f"L1d {_size(self.l1d)}, L2 {_size(self.l2)} ({self.source})"


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n // 1024} KiB"


def cache_sizes() -> CacheSizes | None:
    """The caches the token-tile width is derived from (None when the library is unavailable)."""
    lib = _cdll()
    if lib is None:
        return None
    l1d, l2 = ctypes.c_int64(0), ctypes.c_int64(0)
    source = lib.pruneofa_kernels_cache_sizes(ctypes.byref(l1d), ctypes.byref(l2)).decode()
    return CacheSizes(l1d.value, l2.value, source)


def tile_tokens(
    rows: int,
    isa: str | None = None,
    cache: tuple[int, int] | None = None,
    *,
    int8: bool = False,
    hidden: int = 0,
) -> int | None:
    """Tokens per tile for a layer of ``rows`` inputs (its in_features), or a fused pair ``rows`` ->
    ``hidden`` -> ..., on ``isa`` (default: the running one).

    The tile holds ``rows`` (+ ``hidden`` for a pair) floats per token with FP32 compute; with INT8 compute
    (``int8``) its quads (4 bytes per 4 inputs) plus each token's step and zero point (8 bytes), and for a
    pair also the FP32 intermediate and its INT8 copy, on the INT8 route's lanes (:func:`int8_route` of
    that ISA on this CPU). With ``cache=(l1d, l2)`` bytes: the policy alone for those caches (the widest of
    64 / 32 / 16 tokens, at most 4 vectors, whose tile fills at most half of L2; unknown caches (l2 = 0):
    4 vectors: 64 tokens on 16 lanes, 32 on 8). Without: what a call would use now
    (``PRUNEOFA_KERNELS_TILE`` / :func:`set_tile_tokens`, else the caches read at load). None when the
    library is unavailable."""
    lib = _cdll()
    if lib is None:
        return None
    name = (isa or lib.pruneofa_kernels_isa().decode()).encode()
    l1d, l2 = cache if cache is not None else (0, -1)
    if int8:
        width = lib.pruneofa_kernels_q8_tile_width(int(rows), int(hidden), name, int(l1d), int(l2))
    else:
        width = lib.pruneofa_kernels_tile_width(int(rows) + int(hidden), name, int(l1d), int(l2))
    if width <= 0:
        raise ValueError(f"unknown ISA {isa!r} (scalar, avx2 or avx512)")
    return int(width)


def tile_forced() -> int:
    """The tile width forced by ``PRUNEOFA_KERNELS_TILE`` or :func:`set_tile_tokens` (0: none)."""
    lib = _cdll()
    return int(lib.pruneofa_kernels_tile_forced()) if lib is not None else 0


def load_checks() -> int:
    """How many times this process checked a sparse layer's constants in full (lengths and structure):
    once per layer when a model is read, never per inference."""
    lib = _cdll()
    return int(lib.pruneofa_kernels_load_checks()) if lib is not None else 0


ACTIVATIONS = {"none": 0, "gelu": 1}
ACT_QUANT = {"none": 0, "dynamic": 1, "static": 2}


@dataclass(frozen=True)
class ActQuant:
    """How a layer treats its activations: ``none`` (FP32 compute), ``dynamic`` (INT8 compute, each token
    quantized to u8 over its own min / max) or ``static`` (INT8 compute with one calibrated u8 ``scale``
    and ``zero_point``, as a FakeQuantize in front of the MatMul defines them). ``multiplier`` (static
    only): [in_features] factors applied to the activations before they are quantized, SmoothQuant's
    per-channel Multiply in front of NNCF's FakeQuantize, folded into the op."""

    mode: str = "none"
    scale: float = 0.0
    zero_point: int = 0
    multiplier: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ACT_QUANT:
            raise ValueError(f"activation quantization must be one of {sorted(ACT_QUANT)}, got {self.mode!r}")
        if self.multiplier is not None:
            if self.mode != "static":
                raise ValueError("an activation multiplier needs static activation quantization")
            factors = np.ascontiguousarray(self.multiplier, dtype=np.float32).reshape(-1)
            if not np.isfinite(factors).all():
                raise ValueError("the activation multiplier must be finite")
            object.__setattr__(self, "multiplier", factors)


def _call_arrays(x: np.ndarray, in_features: int, out_features: int):
    """The library, ``x`` as contiguous FP32 whose last dimension is ``in_features`` (the kernel trusts
    that width), its token count and an output array [..., out_features]."""
    lib = _cdll()
    if lib is None:
        raise RuntimeError("pruneofa kernels are not available")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(f"activations of shape {x.shape} do not end in the layer's {in_features} inputs")
    tokens = int(np.prod(x.shape[:-1], dtype=np.int64))
    return lib, x, tokens, np.empty((*x.shape[:-1], out_features), np.float32)


def spmm(
    x: np.ndarray, weight: Any, threads: int = 0, activation: str = "none", quant: ActQuant | None = None
) -> np.ndarray:
    """Run the kernel directly on a ``SparseWeight`` (tests, benchmarks): ``act(x @ W.T + bias)`` for x [..., K],
    with INT8 compute when ``quant`` says so (the weight must then be ``int8-1x4``)."""
    lib, x, tokens, y = _call_arrays(x, weight.in_features, weight.out_features)
    keep: list = []
    layer = _layer(weight, activation, keep, quant)
    rc = lib.pruneofa_kernels_spmm(x.ctypes.data, y.ctypes.data, tokens, ctypes.byref(layer), int(threads))
    if rc != 0:
        raise ValueError("invalid sparse weight structure")
    return y


def _layer(weight: Any, activation: str, keep: list, quant: ActQuant | None = None) -> _Layer:
    arrays = [np.ascontiguousarray(a) for a in (weight.row_ptr, weight.col_idx, weight.values)]
    scales = None if weight.scales is None else np.ascontiguousarray(weight.scales, np.float32)
    bias = None if weight.bias is None else np.ascontiguousarray(weight.bias, np.float32)
    n = weight.out_features
    block_rows = getattr(weight, "block_rows", 1)
    lengths_ok = (
        block_rows in (1, 4)
        and n % block_rows == 0
        and arrays[0].size == n // block_rows + 1
        and arrays[2].size == arrays[1].size * weight.block * block_rows
        and (scales is None or scales.size == n)
        and (bias is None or bias.size == n)
    )
    if not lengths_ok:
        raise ValueError(
            "invalid sparse weight structure: constant lengths do not match out_features / block / block_rows"
        )
    quant = quant or ActQuant()
    multiplier = quant.multiplier
    if multiplier is not None and multiplier.size != weight.in_features:
        raise ValueError(
            f"the activation multiplier has {multiplier.size} factors for {weight.in_features} inputs"
        )
    keep.extend([*arrays, scales, bias, multiplier])
    return _Layer(
        weight.in_features, weight.out_features, arrays[0].ctypes.data, arrays[1].ctypes.data, arrays[1].size, arrays[2].ctypes.data,
        int(arrays[2].dtype == np.int8), weight.block, None if scales is None else scales.ctypes.data,
        None if bias is None else bias.ctypes.data, ACTIVATIONS[activation], block_rows,
        ACT_QUANT[quant.mode], quant.scale, quant.zero_point, None if multiplier is None else multiplier.ctypes.data,
    )  # fmt: skip


def spmm_pair(
    x: np.ndarray,
    first: Any,
    second: Any,
    threads: int = 0,
    first_activation: str = "gelu",
    second_activation: str = "none",
    first_quant: ActQuant | None = None,
    second_quant: ActQuant | None = None,
) -> tuple[np.ndarray, bool]:
    """Two ``SparseWeight`` layers in a row (a fused FFN pair; tests, benchmarks):
    ``act2(act1(x @ W1.T + b1) @ W2.T + b2)``. Returns the output and whether the intermediate stayed in
    per-thread tiles (False when there are too few token tiles for the threads, or when one layer computes
    in FP32 and the other in INT8)."""
    lib, x, tokens, y = _call_arrays(x, first.in_features, second.out_features)
    keep: list = []
    a = _layer(first, first_activation, keep, first_quant)
    b = _layer(second, second_activation, keep, second_quant)
    fused = ctypes.c_int(0)
    rc = lib.pruneofa_kernels_spmm_pair(
        x.ctypes.data, y.ctypes.data, tokens, ctypes.byref(a), ctypes.byref(b), int(threads), ctypes.byref(fused),
    )  # fmt: skip
    if rc != 0:
        raise ValueError("invalid sparse weight structure, or the layers do not chain")
    return y, bool(fused.value)
