"""Sparse weight formats the SparseLinear operation takes, made from (and read back into) dense matrices.

W is [out_features N, in_features K], as ``torch.nn.Linear`` stores it. Every format is a block-CSR of
``1 x block`` blocks along the input dimension: ``row_ptr`` [N + 1] (offsets in blocks), ``col_idx``
[n_blocks] (first column of each block) and ``values`` [n_blocks * block]:

- ``csr``: block 1, FP32 values (unstructured pruning).
- ``block``: block 2, 4 or 8, FP32 values: the recipes' ``block`` pattern (``block_shape`` (r, c) prunes
  r x c tiles; each row of a kept tile is one 1 x c block here, so any r works). One column index per
  c weights means fewer index loads than CSR.
- ``int8-csr`` / ``int8-block``: the same with INT8 values and per-row FP32 scales, ``W = q * scale[row]``
  (NNCF's symmetric per-channel weights). The kernel converts each value to FP32 on the fly (FP32
  compute), or, for 1 x 4 blocks, multiplies them with quantized activations (INT8 compute, below).
- ``int8-1x4``: INT8 values in 1 x 4 blocks whose columns are 4-aligned (:func:`pack_int8_1x4`; when K is
  not a multiple of 4 the last block of a row reaches past K and is zero there): the layout of the INT8
  compute mode, where one 32-bit lane holds 4 consecutive quantized inputs of a token and a dot-product
  instruction (``vpdpbusd``, or ``vpmaddubsw`` + ``vpmaddwd``) does 4 multiply-adds per token.
- ``block4x1``: FP32 blocks of 4 output rows sharing one column index (``block_rows = 4``, ``block = 1``;
  :func:`pack_4x1`): ``row_ptr`` then has N / 4 + 1 entries and ``values`` holds the 4 rows' weights of
  each block, so one loaded activation vector feeds 4 FMAs.

:func:`choose_layout` picks the fastest of these a mask allows.

``densify`` reads a format back position for position, so sparsity accounting can check that every
pruned weight is still an exact zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCKS = (8, 4, 2)
# A block layout is used when it stores at most this share of extra (zero) weights compared with CSR.
BLOCK_PADDING_LIMIT = 0.05
# INT8 1 x 4 blocks (INT8 compute) may store up to twice the nonzeros: a block costs one dot-product lane
# op (4 multiply-adds) where CSR costs one FMA per nonzero on half as many lanes, and INT8 rounding
# leaves zeros inside the blocks of a 1 x 4 pruned weight.
INT8_1X4_PADDING_LIMIT = 1.0


@dataclass
class SparseWeight:
    """One sparse matrix in the operation's layout (plus its optional bias)."""

    in_features: int
    out_features: int
    block: int
    row_ptr: np.ndarray  # int32 [N + 1]
    col_idx: np.ndarray  # int32 [n_blocks]
    values: np.ndarray  # float32 or int8 [n_blocks * block]
    scales: np.ndarray | None = None  # float32 [N] with int8 values
    bias: np.ndarray | None = None  # float32 [N]
    block_rows: int = 1  # 4: 4 x 1 blocks (row_ptr per group of 4 rows)

    @property
    def format(self) -> str:
        if self.block_rows == 4:
            return "block4x1"
        if self.values.dtype == np.int8 and self.block == 4:
            return "int8-1x4"
        base = "csr" if self.block == 1 else "block"
        return f"int8-{base}" if self.values.dtype == np.int8 else base

    @property
    def int8_compute_ready(self) -> bool:
        """Whether the INT8-compute mode takes this weight (INT8 1 x 4 blocks)."""
        return self.format == "int8-1x4"

    @property
    def stored(self) -> int:
        return int(self.values.size)


def sparsity(weight: np.ndarray) -> float:
    return float(1.0 - np.count_nonzero(weight) / max(1, weight.size))


def choose_block(mask: np.ndarray) -> int:
    """The widest block (8, 4, 2) whose layout stores at most 5 % more weights than CSR, else 1."""
    n, k = mask.shape
    nnz = int(np.count_nonzero(mask))
    for block in BLOCKS:
        if k % block or nnz == 0:
            continue
        kept = int(np.count_nonzero(mask.reshape(n, k // block, block).any(axis=2)))
        if kept * block <= nnz * (1.0 + BLOCK_PADDING_LIMIT):
            return block
    return 1


def pack(
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    block: int | None = None,
    int8: np.ndarray | None = None,
    scales: np.ndarray | None = None,
) -> SparseWeight:
    """Pack a dense [N, K] matrix (its zeros are dropped).

    ``block``: 1, 2, 4, 8, or None to choose by ``choose_block``. For INT8 values pass ``int8`` (the
    integer matrix, zero where pruned) and per-row ``scales``; ``weight`` is then only used for its mask.
    """
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D [out, in], got shape {weight.shape}")
    source = weight if int8 is None else np.asarray(int8)
    mask = source != 0
    n, k = mask.shape
    if block is None:
        block = choose_block(mask)
    if block not in (1, 2, 4, 8) or k % block:
        raise ValueError(f"block {block} must be 1, 2, 4 or 8 and divide in_features {k}")
    kept = mask.reshape(n, k // block, block).any(axis=2)  # [N, K / block]
    rows, slots = np.nonzero(kept)
    row_ptr = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=row_ptr[1:])
    col_idx = (slots * block).astype(np.int32)
    gathered = source.reshape(n, k // block, block)[rows, slots].reshape(-1)
    if int8 is None:
        values = gathered.astype(np.float32)
        scale_arr = None
    else:
        if scales is None:
            raise ValueError("int8 values need per-row scales")
        values = gathered.astype(np.int8)
        scale_arr = np.asarray(scales, np.float32).reshape(n)
    return SparseWeight(
        in_features=k,
        out_features=n,
        block=block,
        row_ptr=row_ptr,
        col_idx=col_idx,
        values=np.ascontiguousarray(values),
        scales=scale_arr,
        bias=None if bias is None else np.asarray(bias, np.float32).reshape(n),
    )


def _padding_ok(kept_blocks: int, block_size: int, nnz: int, limit: float = BLOCK_PADDING_LIMIT) -> bool:
    return nnz > 0 and kept_blocks * block_size <= nnz * (1.0 + limit)


def blocked_1x4(mask: np.ndarray, limit: float = INT8_1X4_PADDING_LIMIT) -> bool:
    """Whether the nonzeros come in 4-aligned 1 x 4 blocks along K, storing at most ``limit`` extra zeros
    relative to the nonzeros (K need not be a multiple of 4)."""
    n, k = mask.shape
    padded = np.zeros((n, -(-k // 4) * 4), bool)
    padded[:, :k] = mask
    kept = int(np.count_nonzero(padded.reshape(n, -1, 4).any(axis=2)))
    return _padding_ok(kept, 4, int(np.count_nonzero(mask)), limit)


def blocked_4x1(mask: np.ndarray) -> bool:
    """Whether the nonzeros come in 4 x 1 blocks (4 output rows, one column; N a multiple of 4; at most
    5 % padding zeros)."""
    n, k = mask.shape
    if n % 4:
        return False
    kept = int(np.count_nonzero(mask.reshape(n // 4, 4, k).any(axis=1)))
    return _padding_ok(kept, 4, int(np.count_nonzero(mask)))


def choose_layout(mask: np.ndarray, int8: bool) -> str:
    """The fastest format the mask allows: ``int8-1x4`` for INT8 weights in 1 x 4 blocks (INT8 compute),
    ``block4x1`` for 4 x 1 blocks (FP32; INT8 weights are dequantized for it), else the block-CSR of
    :func:`choose_block` (``csr`` / ``block`` / ``int8-csr`` / ``int8-block``)."""
    if int8 and blocked_1x4(mask):
        return "int8-1x4"
    if blocked_4x1(mask):
        return "block4x1"
    base = "csr" if choose_block(mask) == 1 else "block"
    return f"int8-{base}" if int8 else base


def pack_int8_1x4(q: np.ndarray, scales: np.ndarray, bias: np.ndarray | None = None) -> SparseWeight:
    """INT8 [N, K] values (zero where pruned) in 4-aligned 1 x 4 blocks for the INT8-compute mode; K is
    padded with zeros to a multiple of 4, so a row's last block may reach past K (zeros there)."""
    q = np.asarray(q)
    if q.ndim != 2 or q.dtype != np.int8:
        raise ValueError(f"INT8 1x4 packing needs an int8 [out, in] matrix, got {q.dtype} {q.shape}")
    n, k = q.shape
    padded = np.zeros((n, -(-k // 4) * 4), np.int8)
    padded[:, :k] = q
    sw = pack(padded, bias=bias, block=4, int8=padded, scales=scales)
    sw.in_features = k
    return sw


def pack_4x1(weight: np.ndarray, bias: np.ndarray | None = None) -> SparseWeight:
    """A dense FP32 [N, K] matrix (N a multiple of 4) in 4 x 1 blocks: a block is kept when any of its 4
    rows is nonzero at that column."""
    weight = np.asarray(weight, np.float32)
    if weight.ndim != 2 or weight.shape[0] % 4:
        raise ValueError(
            f"4x1 blocks need a 2-D [out, in] weight with out a multiple of 4, got {weight.shape}"
        )
    n, k = weight.shape
    grouped = weight.reshape(n // 4, 4, k)
    kept = (grouped != 0).any(axis=1)  # [N / 4, K]
    groups, cols = np.nonzero(kept)
    row_ptr = np.zeros(n // 4 + 1, np.int32)
    np.cumsum(np.bincount(groups, minlength=n // 4), out=row_ptr[1:])
    values = grouped[groups, :, cols].reshape(-1)  # [n_blocks, 4] row-major
    return SparseWeight(
        in_features=k,
        out_features=n,
        block=1,
        row_ptr=row_ptr,
        col_idx=cols.astype(np.int32),
        values=np.ascontiguousarray(values, np.float32),
        bias=None if bias is None else np.asarray(bias, np.float32).reshape(n),
        block_rows=4,
    )


def densify(sw: SparseWeight) -> np.ndarray:
    """The dense FP32 [N, K] matrix a SparseWeight stands for (INT8 values dequantized)."""
    if sw.block_rows == 4:
        dense = np.zeros((sw.out_features, sw.in_features), np.float32)
        counts = np.diff(sw.row_ptr.astype(np.int64))
        groups = np.repeat(np.arange(sw.out_features // 4), counts)
        values = sw.values.astype(np.float32).reshape(-1, 4)
        for r in range(4):
            dense[groups * 4 + r, sw.col_idx.astype(np.int64)] = values[:, r]
        return dense
    k_padded = -(-sw.in_features // sw.block) * sw.block
    if k_padded != sw.in_features:  # int8-1x4 with K not a multiple of 4: the padding must hold zeros
        wide = densify(
            SparseWeight(k_padded, sw.out_features, sw.block, sw.row_ptr, sw.col_idx, sw.values, sw.scales)
        )
        if np.any(wide[:, sw.in_features :]):
            raise ValueError("a 1x4 block holds nonzeros past in_features")
        return np.ascontiguousarray(wide[:, : sw.in_features])
    dense = np.zeros((sw.out_features, sw.in_features), np.float32)
    counts = np.diff(sw.row_ptr.astype(np.int64))
    rows = np.repeat(np.arange(sw.out_features), counts)
    values = sw.values.astype(np.float32).reshape(-1, sw.block)
    if sw.scales is not None:
        values = values * sw.scales[rows, None]
    for b in range(sw.block):
        dense[rows, sw.col_idx.astype(np.int64) + b] = values[:, b]
    return dense


def quantize_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row INT8 (``q = round(w / scale)``, ``scale = max|w| / 127``); zeros stay zeros."""
    weight = np.asarray(weight, np.float32)
    scales = np.abs(weight).max(axis=1) / 127.0
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales


def _optional_concat(parts: list[np.ndarray | None]) -> np.ndarray | None:
    if all(part is None for part in parts):
        return None
    present = [part for part in parts if part is not None]
    if len(present) != len(parts):
        raise ValueError("stacked layers must all have (or all lack) this array")
    return np.concatenate(present)


def stack_rows(weights: list[SparseWeight]) -> SparseWeight:
    """Several layers on the same input as one matrix, their rows one after the other (what
    SparseLinearSplit computes). They must share in_features, block and the values' type."""
    first = weights[0]
    if any(
        w.in_features != first.in_features
        or w.block != first.block
        or w.block_rows != first.block_rows
        or w.values.dtype != first.values.dtype
        for w in weights
    ):
        raise ValueError("stacked layers must share in_features, block, block_rows and the values' type")
    offsets = np.cumsum([0] + [int(w.row_ptr[-1]) for w in weights[:-1]])
    row_ptr = np.concatenate(
        [weights[0].row_ptr[:1]]
        + [w.row_ptr[1:] + offset for w, offset in zip(weights, offsets, strict=True)]
    ).astype(np.int32)
    return SparseWeight(
        in_features=first.in_features,
        out_features=sum(w.out_features for w in weights),
        block=first.block,
        row_ptr=row_ptr,
        col_idx=np.concatenate([w.col_idx for w in weights]).astype(np.int32),
        values=np.ascontiguousarray(np.concatenate([w.values for w in weights])),
        scales=_optional_concat([w.scales for w in weights]),
        bias=_optional_concat([w.bias for w in weights]),
        block_rows=first.block_rows,
    )


def split_rows(weight: SparseWeight, parts: int) -> list[SparseWeight]:
    """The inverse of :func:`stack_rows` for ``parts`` layers of equal size."""
    if parts < 1 or weight.out_features % parts:
        raise ValueError(f"{weight.out_features} rows do not split into {parts} equal parts")
    rows = weight.out_features // parts
    if rows % weight.block_rows:
        raise ValueError(f"parts of {rows} rows do not hold whole {weight.block_rows}-row blocks")
    groups = rows // weight.block_rows
    per_block = weight.block * weight.block_rows
    out = []
    for i in range(parts):
        ptr = weight.row_ptr[i * groups : (i + 1) * groups + 1].astype(np.int64)
        begin, end = int(ptr[0]), int(ptr[-1])
        out.append(
            SparseWeight(
                in_features=weight.in_features,
                out_features=rows,
                block=weight.block,
                row_ptr=(ptr - begin).astype(np.int32),
                col_idx=weight.col_idx[begin:end].copy(),
                values=weight.values[begin * per_block : end * per_block].copy(),
                scales=None if weight.scales is None else weight.scales[i * rows : (i + 1) * rows].copy(),
                bias=None if weight.bias is None else weight.bias[i * rows : (i + 1) * rows].copy(),
                block_rows=weight.block_rows,
            )
        )
    return out
