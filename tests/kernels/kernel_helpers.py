"""Shared helpers for the kernel tests (imported by path-free module name from this folder).

Kept out of a conftest.py so that nothing here shadows ``from conftest import ...`` in other test folders.
"""

from __future__ import annotations

import numpy as np
import pytest


def require_kernels():
    """The kernels package with a built library, or skip (no compiler here)."""
    from pruneofa import kernels

    if not kernels.available():
        pytest.skip("pruneofa kernels could not be built here (no compiler?)")
    return kernels


def random_sparse(rng: np.random.Generator, n: int, k: int, sparsity: float, block: int = 1) -> np.ndarray:
    """A [n, k] FP32 matrix with about ``sparsity`` zeros, in 1 x block blocks; some rows empty."""
    w = rng.standard_normal((n, k)).astype(np.float32)
    slots = k // block
    keep = rng.random((n, slots)) >= sparsity
    mask = np.zeros((n, k), bool)
    mask[:, : slots * block] = np.repeat(keep, block, axis=1)
    if n > 3:
        mask[n // 3] = False  # an empty row
    w[~mask] = 0.0
    return w


def dense_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    return (y + bias if bias is not None else y).astype(np.float32)


def tolerance(x: np.ndarray, w: np.ndarray) -> float:
    """Absolute tolerance for FP32 accumulation over K terms."""
    return 1e-5 * float(np.abs(x).max(initial=1.0) * np.abs(w).sum(axis=1).max(initial=1.0)) + 1e-6
