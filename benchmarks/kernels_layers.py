"""Per-layer speed of the SparseLinear op against OpenVINO's dense MatMul, and the crossover table it implies.

For each Linear shape of MiniLM (384->384, 384->1536, 1536->384) and BERT-Base (768->768, 768->3072,
3072->768), each token count and each sparsity: a one-layer dense OV model (MatMul + bias, FP32 precision
hint) and the same layer as SparseLinear (random unstructured zeros, FP32 values), compiled on CPU with the
same threads, timed in interleaved rounds (dense, sparse, dense, ...); medians and dense/sparse ratios are
printed. The crossover per shape (the sparsity where the ratio reaches 1, interpolated between measured
points; the largest over token counts) is written to ``kernels/crossover.json`` for ``mode="auto"``.

Run:  .venv/bin/python benchmarks/kernels_layers.py [--isa avx2 --isa avx512] [--threads 2] [--quick]
(about 4 minutes per ISA on 2 cores; ``--quick`` measures 128 tokens and fewer sparsities only, and does
not write the table unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

SHAPES = [(384, 384), (384, 1536), (1536, 384), (768, 768), (768, 3072), (3072, 768)]
SPARSITIES = [0.5, 0.7, 0.8, 0.85, 0.9, 0.95]
TABLE = Path(__file__).resolve().parents[1] / "kernels" / "crossover.json"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def dense_model(w: np.ndarray, bias: np.ndarray):
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, w.shape[1]], np.float32, name="x")
    y = ops.add(ops.matmul(x, ops.constant(w), False, True), ops.constant(bias))
    return ov.Model([y.output(0)], [x], "dense_linear")


def time_request(request, budget_s: float) -> float:
    """Median seconds per inference over about ``budget_s`` (at least 5 runs). The input tensor is set once
    (shared with numpy) and outputs are not copied, so Python adds little to the layer's own time."""
    request.infer()
    times = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < budget_s:
        t0 = time.perf_counter()
        request.infer()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def crossover_from(ratios: dict[float, float]) -> float:
    """Sparsity where dense/sparse reaches 1: interpolated between measured points, 1.0 if never."""
    points = sorted(ratios.items())
    if points[0][1] >= 1.0:
        return points[0][0]
    for (s0, r0), (s1, r1) in zip(points, points[1:], strict=False):
        if r0 < 1.0 <= r1:
            return s0 + (1.0 - r0) * (s1 - s0) / (r1 - r0)
    return 1.0


def measure_isa(
    isa: str, tokens_list: list[int], sparsities: list[float], threads: int, rounds: int, budget: float
):
    import openvino as ov
    import openvino.opset13 as ops

    from pruneofa import kernels
    from pruneofa.kernels import formats, library
    from pruneofa.kernels.rewrite import make_node

    library.set_isa(isa)
    core = ov.Core()
    kernels.register(core)
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
    rng = np.random.default_rng(0)
    shapes_out = []
    print(f"\n== ISA {isa}, {threads} threads, {load()}")
    print(f"{'in->out':>11} {'tokens':>6} {'sparsity':>8} {'dense ms':>9} {'sparse ms':>9} {'ratio':>6}")
    for k, n in SHAPES:
        w_full = rng.standard_normal((n, k)).astype(np.float32) * 0.05
        bias = rng.standard_normal(n).astype(np.float32)
        dense = core.compile_model(dense_model(w_full, bias), "CPU", config)
        per_tokens = {}
        for tokens in tokens_list:
            x = rng.standard_normal((tokens, k)).astype(np.float32)
            ratios = {}
            for sparsity in sparsities:
                w = w_full * (rng.random(w_full.shape) >= sparsity)
                xp = ops.parameter([-1, k], np.float32, name="x")
                node = make_node(xp.output(0), formats.pack(w, bias=bias, block=1), name="sparse")
                sparse = core.compile_model(ov.Model([node.output(0)], [xp]), "CPU", config)
                d_req, s_req = dense.create_infer_request(), sparse.create_infer_request()
                for request in (d_req, s_req):
                    request.set_input_tensor(ov.Tensor(x, shared_memory=True))
                d_times, s_times = [], []
                for _ in range(rounds):  # interleaved so that load changes hit both alike
                    d_times.append(time_request(d_req, budget))
                    s_times.append(time_request(s_req, budget))
                d_ms, s_ms = statistics.median(d_times) * 1e3, statistics.median(s_times) * 1e3
                ratios[sparsity] = d_ms / s_ms
                print(
                    f"{k:>5}->{n:<5} {tokens:>6} {sparsity:>8.0%} {d_ms:>9.3f} {s_ms:>9.3f} {d_ms / s_ms:>6.2f}"
                )
                sys.stdout.flush()
            per_tokens[tokens] = {"ratios": {f"{s:.2f}": round(r, 3) for s, r in ratios.items()},
                                  "crossover": round(crossover_from(ratios), 3)}  # fmt: skip
        worst = max(v["crossover"] for v in per_tokens.values())
        detail = ", ".join(f"{t} tokens {v['crossover']:.1%}" for t, v in per_tokens.items())
        print(f"{k:>5}->{n:<5} crossover {worst:.1%} ({detail})")
        shapes_out.append({"in_features": k, "out_features": n, "crossover": worst, "tokens": per_tokens})
    return {"threads": threads, "load_average": [round(v, 2) for v in os.getloadavg()], "shapes": shapes_out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--isa", action="append", help="kernel path(s) to measure (default: the selected one)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, action="append", help="token counts (default 128 and 2048)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.15, help="seconds per timing in a round")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, help=f"crossover table to write (default {TABLE}, not with --quick)"
    )
    args = parser.parse_args()

    from pruneofa import kernels
    from pruneofa.kernels import library

    if not kernels.available():
        print("pruneofa kernels unavailable (see the warning above); nothing to measure")
        return 1
    isas = args.isa or [kernels.isa()]
    tokens = args.tokens or ([128] if args.quick else [128, 2048])
    sparsities = [0.7, 0.9] if args.quick else SPARSITIES
    before = library.isa()
    table = {
        "about": "crossover sparsity per Linear shape: SparseLinear vs OpenVINO dense MatMul (FP32), measured",
        "command": " ".join(["benchmarks/kernels_layers.py", *sys.argv[1:]]),
        "measured": date.today().isoformat(),
        "cpu": _cpu_name(),
        "isas": {},
    }
    for isa in isas:
        table["isas"][isa] = measure_isa(isa, tokens, sparsities, args.threads, args.rounds, args.budget)
    library.set_isa(before)
    out = args.out or (None if args.quick else TABLE)
    if out is not None:
        if out.exists() and out == TABLE:  # keep other ISAs' tables measured earlier
            old = json.loads(out.read_text(encoding="utf-8")).get("isas", {})
            table["isas"] = {**{k: v for k, v in old.items() if k not in table["isas"]}, **table["isas"]}
        out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")
    return 0


def _cpu_name() -> str:
    try:
        import openvino as ov

        return str(ov.Core().get_property("CPU", "FULL_DEVICE_NAME"))
    except Exception:  # informational only
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
