"""One sparse layer in each kernel format, called directly (no OpenVINO graph): where INT8 compute and the
4x1 blocks stand against CSR FP32 on this CPU.

For one shape, token count and sparsity: random weights in each format (unstructured CSR FP32; 1x4 blocks
as FP32, as INT8 with FP32 compute, as INT8 with INT8 compute, dynamic and static; 4x1 FP32 blocks),
each timed as the fastest of ``--calls`` calls through ``kernels.library.spmm`` on every requested ISA.
Prints microseconds per format and the CPU load, so figures are ratios between formats of one run.

Run:  .venv/bin/python benchmarks/kernels_formats.py [--k 384 --n 1536 --tokens 128 --sparsity 0.9]
      [--threads 1] [--isa avx512 --isa avx2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def fastest(fn, calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e6


def weights(rng, k: int, n: int, sparsity: float) -> dict:
    from pruneofa.kernels import formats, library

    keep = rng.random((n, -(-k // 4))) >= sparsity
    q = (rng.integers(-128, 128, (n, keep.shape[1] * 4)) * np.repeat(keep, 4, axis=1))[:, :k].astype(np.int8)
    scales = (0.001 + 0.01 * rng.random(n)).astype(np.float32)
    w1x4 = q.astype(np.float32) * scales[:, None]
    unstructured = rng.standard_normal((n, k)).astype(np.float32) * (rng.random((n, k)) >= sparsity)
    rows = rng.standard_normal((n, k)).astype(np.float32) * np.repeat(
        rng.random((n // 4, k)) >= sparsity, 4, 0
    )
    dynamic, static = library.ActQuant("dynamic"), library.ActQuant("static", 0.02, 128)
    return {
        "csr fp32": (formats.pack(unstructured, block=1), None),
        "1x4 fp32": (formats.pack(w1x4, block=4), None),
        "1x4 int8, fp32 compute": (formats.pack(w1x4, block=4, int8=q, scales=scales), None),
        "int8-1x4 dynamic": (formats.pack_int8_1x4(q, scales), dynamic),
        "int8-1x4 static": (formats.pack_int8_1x4(q, scales), static),
        "4x1 fp32": (formats.pack_4x1(rows), None),
    }


def main() -> None:
    from pruneofa.kernels import library

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=384)
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--isa", action="append", help="kernel paths to time (default: every supported one)")
    args = parser.parse_args()
    if not library.available():
        raise SystemExit("pruneofa kernels are not available here")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.tokens, args.k)).astype(np.float32)
    cases = weights(rng, args.k, args.n, args.sparsity)
    print(f"{args.k}->{args.n}, {args.tokens} tokens, {args.sparsity:.0%} zeros, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for isa in args.isa or library.supported_isas():
        library.set_isa(isa)
        row = [
            f"{name} {fastest(lambda sw=sw, q=q: library.spmm(x, sw, threads=args.threads, quant=q), args.calls):.0f}"
            for name, (sw, q) in cases.items()
        ]
        print(f"{isa} (INT8 route {library.int8_route()}): " + "; ".join(row) + " (µs)")


if __name__ == "__main__":
    main()
