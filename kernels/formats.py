"""Sparse weight formats the SparseLinear operation takes, made from (and read back into) dense matrices.

W is [out_features N, in_features K], as ``torch.nn.Linear`` stores it. Every format is a block-CSR of
``1 x block`` blocks along the input dimension: ``row_ptr`` [N + 1] (offsets in blocks), ``col_idx``
[n_blocks] (first column of each block) and ``values`` [n_blocks * block]:

- ``csr``: block 1, FP32 values (unstructured pruning).
- ``block``: block 2, 4 or 8, FP32 values: the recipes' ``block`` pattern (``block_shape`` (r, c) prunes
  r x c tiles; each row of a kept tile is one 1 x c block here, so any r works). One column index per
  c weights means fewer index loads than CSR.
- ``int8-csr`` / ``int8-block``: the same with INT8 values and per-row FP32 scales, ``W = q * scale[row]``
  (NNCF's symmetric per-channel weights). The kernel converts each value to FP32 on the fly: on CPUs
  without VNNI, INT8 GEMM is slower than FP32, and the INT8 copy still halves index + value traffic.

``densify`` reads a format back position for position, so sparsity accounting can check that every
pruned weight is still an exact zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCKS = (8, 4, 2)
# A block layout is used when it stores at most this share of extra (zero) weights compared with CSR.
BLOCK_PADDING_LIMIT = 0.05


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

    @property
    def format(self) -> str:
        base = "csr" if self.block == 1 else "block"
        return f"int8-{base}" if self.values.dtype == np.int8 else base

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


def densify(sw: SparseWeight) -> np.ndarray:
    """The dense FP32 [N, K] matrix a SparseWeight stands for (INT8 values dequantized)."""
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
        w.in_features != first.in_features or w.block != first.block or w.values.dtype != first.values.dtype
        for w in weights
    ):
        raise ValueError("stacked layers must share in_features, block and the values' type")
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
    )


def split_rows(weight: SparseWeight, parts: int) -> list[SparseWeight]:
    """The inverse of :func:`stack_rows` for ``parts`` layers of equal size."""
    if parts < 1 or weight.out_features % parts:
        raise ValueError(f"{weight.out_features} rows do not split into {parts} equal parts")
    rows = weight.out_features // parts
    out = []
    for i in range(parts):
        ptr = weight.row_ptr[i * rows : (i + 1) * rows + 1].astype(np.int64)
        begin, end = int(ptr[0]), int(ptr[-1])
        out.append(
            SparseWeight(
                in_features=weight.in_features,
                out_features=rows,
                block=weight.block,
                row_ptr=(ptr - begin).astype(np.int32),
                col_idx=weight.col_idx[begin:end].copy(),
                values=weight.values[begin * weight.block : end * weight.block].copy(),
                scales=None if weight.scales is None else weight.scales[i * rows : (i + 1) * rows].copy(),
                bias=None if weight.bias is None else weight.bias[i * rows : (i + 1) * rows].copy(),
            )
        )
    return out
