"""Per-layer speed of each sparse format against what OpenVINO runs dense, and the crossover table it implies.

For each kernel ISA (avx512, avx2), Linear shape of MiniLM (384->384, 384->1536, 1536->384) and BERT-Base
(768->768, 768->3072, 3072->768), token count (128, 2048) and sparsity (70-95 %): one-layer models compiled
by OpenVINO (2 threads, one stream) -- dense FP32 (INFERENCE_PRECISION_HINT f32), dense bf16 (where the CPU
has native bf16), dense INT8 (a u8 FakeQuantize on the activation and s8 weights dequantized by a
per-row Multiply, as NNCF writes them: OpenVINO runs an INT8 GEMM) -- and the same layer as SparseLinear in
each format: ``csr`` (unstructured, FP32), ``block4x1`` (4 x 1 FP32 blocks), ``int8-1x4-static`` /
``int8-1x4-dynamic`` (1 x 4 INT8 blocks, INT8 compute, the activation quantized by the folded FakeQuantize's
range or per token). Every case of a (shape, tokens) group is timed once per round, rounds interleaved so
that load changes hit all alike; min and median per call are kept, ratios are dense / sparse medians.

Each ISA runs in its own process: ``avx2`` with ``ONEDNN_MAX_CPU_ISA=AVX2`` (and ``OV_CPU_MAX_ISA``), set
before OpenVINO loads. A short probe process with ``ONEDNN_VERBOSE=1`` first records which ISA each dense
kind really runs (oneDNN's inner-product implementation; a dense kind that runs outside oneDNN, like FP32
through MLAS, is not capped by that variable and runs the CPU's best ISA). A dense kind whose probe does
not match the table's ISA is not measured: an avx2 table is never measured against AVX-512 dense (run it
on an AVX2 machine for those kinds). The table (schema 2, see ``kernels/crossover.py``) records per ISA the
CPU, its flags, the dense ISA per kind, date, command and load average.

Run:  .venv/bin/python benchmarks/kernels_layers.py [--isa avx512 --isa avx2] [--quick] [--out PATH]
The default writes ``kernels/crossover.json`` (keeping other ISAs' schema-2 tables); ``--quick`` (two
shapes, 128 tokens, two sparsities, for tests and development) writes only with ``--out``. Where the file's
table for an ISA was measured on another CPU model, this CPU's table goes beside it under ``machines``
(``auto`` reads it on a CPU like this one) and the other stays the default for unknown CPUs; ``--default``
makes this CPU's the default instead (the other moves under ``machines``). The expected
duration is printed before measuring and the wall time after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from kernels_layer_models import cpu_flags, dense_model, layer, probe, probe_main, sparse_model

SHAPES = [(384, 384), (384, 1536), (1536, 384), (768, 768), (768, 3072), (3072, 768)]
TOKENS = [128, 2048]
SPARSITIES = [0.7, 0.8, 0.85, 0.9, 0.95]
FORMATS = ("csr", "block4x1", "int8-1x4-static", "int8-1x4-dynamic")  # crossover.MEASURED_FORMATS
DENSE = ("fp32", "bf16", "int8")
QUICK = {"shapes": [(384, 384), (768, 3072)], "tokens": [128], "sparsities": [0.8, 0.95]}
TABLE = Path(__file__).resolve().parents[1] / "kernels" / "crossover.json"
CAP = {"avx2": "AVX2"}  # kernel ISA -> ONEDNN_MAX_CPU_ISA / OV_CPU_MAX_ISA for the dense side
GFLOPS_PER_THREAD = {"avx512": 35.0, "avx2": 18.0}  # dense FP32, for the duration estimate only


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def native_bf16(isa: str) -> bool:
    return isa != "avx2" and bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


# ---- timing ---------------------------------------------------------------------------------------


def time_request(request, budget_s: float, min_runs: int = 3) -> list[float]:
    """Seconds per call over about ``budget_s`` (at least ``min_runs`` calls), after one warm-up call."""
    request.infer()
    times = []
    started = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - started < budget_s:
        t0 = time.perf_counter()
        request.infer()
        times.append(time.perf_counter() - t0)
    return times


def crossover_from(ratios: dict[float, float]) -> float:
    """Sparsity where dense/sparse reaches 1: interpolated between measured points, 1.0 if never."""
    points = sorted(ratios.items())
    if points[0][1] >= 1.0:
        return points[0][0]
    for (s0, r0), (s1, r1) in zip(points, points[1:], strict=False):
        if r0 < 1.0 <= r1:
            return s0 + (1.0 - r0) * (s1 - s0) / (r1 - r0)
    return 1.0


def worker_main(args) -> None:
    """One ISA in this process: every shape, token count, dense kind and sparse format; JSON to --result."""
    import openvino as ov

    from pruneofa import kernels
    from pruneofa.kernels import library

    library.set_isa(args.worker)
    core = ov.Core()
    kernels.register(core)
    base = {"INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1}
    rng = np.random.default_rng(0)
    entries = []
    print(f"{'in->out':>11} {'tokens':>6} {'case':>24} {'min ms':>8} {'median ms':>9}")
    for k, n in [tuple(s) for s in args.shape_list]:
        q, scales, bias = layer(rng, k, n)
        models = {}
        for kind in args.dense_kinds:
            hint = "bf16" if kind == "bf16" else "f32"
            config = {**base, "INFERENCE_PRECISION_HINT": hint}
            models[("dense", kind)] = core.compile_model(dense_model(kind, q, scales, bias), "CPU", config)
        for fmt in args.formats:
            for sparsity in args.sparsities:
                model = sparse_model(fmt, rng, q, scales, bias, sparsity)
                config = {**base, "INFERENCE_PRECISION_HINT": "f32"}
                models[(fmt, sparsity)] = core.compile_model(model, "CPU", config)
        per_tokens: dict[int, dict] = {}
        for tokens in args.tokens:
            x = rng.standard_normal((tokens, k)).astype(np.float32)
            requests = {}
            for key, compiled in models.items():
                requests[key] = compiled.create_infer_request()
                requests[key].set_input_tensor(ov.Tensor(x, shared_memory=True))
            times: dict = {key: [] for key in requests}
            for _ in range(args.rounds):  # interleaved: each case once per round
                for key, request in requests.items():
                    times[key].extend(time_request(request, args.budget))
            stats = {key: (min(t) * 1e3, statistics.median(t) * 1e3) for key, t in times.items()}
            for key, (low, mid) in stats.items():
                label = f"dense {key[1]}" if key[0] == "dense" else f"{key[0]} {key[1]:.0%}"
                print(f"{k:>5}->{n:<5} {tokens:>6} {label:>24} {low:>8.3f} {mid:>9.3f}", flush=True)
            per_tokens[tokens] = stats
        for fmt in args.formats:
            for kind in args.dense_kinds:
                by_tokens = {}
                for tokens, stats in per_tokens.items():
                    ratios = {s: stats[("dense", kind)][1] / stats[(fmt, s)][1] for s in args.sparsities}
                    by_tokens[str(tokens)] = {
                        "dense_ms": [round(v, 4) for v in stats[("dense", kind)]],
                        "sparse_ms": {f"{s:.2f}": [round(v, 4) for v in stats[(fmt, s)]] for s in args.sparsities},
                        "ratios": {f"{s:.2f}": round(r, 3) for s, r in ratios.items()},
                        "crossover": round(crossover_from(ratios), 3),
                    }  # fmt: skip
                worst = max(v["crossover"] for v in by_tokens.values())
                entries.append({"format": fmt, "dense": kind, "in_features": k, "out_features": n,
                                "crossover": worst, "tokens": by_tokens})  # fmt: skip
                print(f"{k:>5}->{n:<5} {fmt} vs dense-{kind}: crossover {worst:.1%}")
    Path(args.result).write_text(json.dumps(entries), encoding="utf-8")


# ---- the driver -----------------------------------------------------------------------------------


def estimate_s(isa: str, plan: dict, kinds: list[str]) -> float:
    """Rough wall time of one ISA's worker: the timed calls (a dense call's FLOPs at a nominal rate, a
    sparse one's scaled by its density) and the compiles."""
    rate = GFLOPS_PER_THREAD[isa] * 1e9 * plan["threads"]
    total = 0.0
    for k, n in plan["shapes"]:
        total += 0.05 * (len(kinds) + len(FORMATS) * len(plan["sparsities"])) + 1e-8 * k * n * len(
            plan["sparsities"]
        )
        for tokens in plan["tokens"]:
            call = 2 * k * n * tokens / rate
            calls = [call] * len(kinds) + [2 * call * (1 - s) for s in plan["sparsities"] for _ in FORMATS]
            total += plan["rounds"] * sum(max(plan["budget"], 4 * c) for c in calls)
    return total + 8.0  # process start, OpenVINO and extension load, the probe


def measure(isa: str, plan: dict) -> dict:
    env = {**os.environ, "PRUNEOFA_KERNELS_ISA": isa}
    if isa in CAP:
        env.update(ONEDNN_MAX_CPU_ISA=CAP[isa], OV_CPU_MAX_ISA=CAP[isa])
    notes = []
    kinds = list(DENSE)
    if not native_bf16(isa):
        kinds.remove("bf16")
        notes.append(
            f"dense bf16 not measured: no native bf16 {'under the AVX2 cap' if isa == 'avx2' else 'on this CPU'}"
        )
    dense_isa = probe(__file__, kinds, env)
    for kind in list(kinds):
        ran = dense_isa[kind]["isa"]
        if (isa == "avx2") != (ran == "avx2"):
            kinds.remove(kind)
            notes.append(f"dense {kind} not measured: it ran {ran} ({dense_isa[kind]['via']}), not {isa}; "
                         f"measure it on an {isa.upper()} machine")  # fmt: skip
    for note in notes:
        print(f"[{isa}] {note}")
    if not kinds:
        return {"notes": notes, "dense_isa": dense_isa, "entries": []}
    print(
        f"\n== kernel ISA {isa}: dense {', '.join(kinds)}; expected about {estimate_s(isa, plan, kinds) / 60:.1f} min"
    )
    started, before = time.perf_counter(), load()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "entries.json"
        command = [
            sys.executable, __file__, "--worker", isa, "--result", str(result), "--threads", str(plan["threads"]),
            "--rounds", str(plan["rounds"]), "--budget", str(plan["budget"]),
            "--shapes", json.dumps(plan["shapes"]), "--tokens-json", json.dumps(plan["tokens"]),
            "--sparsities", json.dumps(plan["sparsities"]), "--dense-kinds", json.dumps(kinds),
        ]  # fmt: skip
        subprocess.run(command, env=env, check=True)
        entries = json.loads(result.read_text(encoding="utf-8"))
    wall = time.perf_counter() - started
    print(f"== kernel ISA {isa}: {wall / 60:.1f} min")
    return {
        "cpu": _cpu_name(),
        "flags": cpu_flags(),
        "dense_isa": {kind: dense_isa[kind] for kind in kinds},
        "onednn_max_cpu_isa": CAP.get(isa),
        "measured": datetime.now(UTC).isoformat(timespec="minutes"),
        "command": " ".join(["benchmarks/kernels_layers.py", *sys.argv[1:]]),
        "threads": plan["threads"],
        "rounds": plan["rounds"],
        "budget_s": plan["budget"],
        "load_average": {"before": before, "after": load()},
        "wall_s": round(wall, 1),
        "notes": notes,
        "entries": entries,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--isa", action="append", help="kernel ISAs to measure (default: every one this CPU runs)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--budget", type=float, default=0.04, help="seconds per case per round (at least 3 calls)"
    )
    parser.add_argument("--quick", action="store_true", help="2 shapes, 128 tokens, 2 sparsities, 2 rounds")
    parser.add_argument(
        "--out", type=Path, help=f"table to write (default {TABLE}; --quick: only with --out)"
    )
    parser.add_argument("--estimate", action="store_true", help="print the expected duration and stop")
    parser.add_argument(
        "--default",
        action="store_true",
        help="make this CPU's tables the defaults of the file (another CPU's move under 'machines')",
    )
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    for name in ("--shapes", "--tokens-json", "--sparsities", "--dense-kinds"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe)
        return 0
    if args.worker:
        args.shape_list, args.tokens = json.loads(args.shapes), json.loads(args.tokens_json)
        args.sparsities, args.dense_kinds = json.loads(args.sparsities), json.loads(args.dense_kinds)
        args.formats = FORMATS
        worker_main(args)
        return 0

    from pruneofa import kernels
    from pruneofa.kernels import crossover, library

    if not kernels.available():
        print("pruneofa kernels unavailable (see the warning above); nothing to measure")
        return 1
    plan = {"shapes": SHAPES, "tokens": TOKENS, "sparsities": SPARSITIES, "threads": args.threads,
            "rounds": args.rounds, "budget": args.budget}  # fmt: skip
    if args.quick:
        plan.update(QUICK, rounds=min(args.rounds, 2), budget=min(args.budget, 0.02))
    isas = [isa for isa in (args.isa or ["avx512", "avx2"]) if isa in library.supported_isas()]
    expected = sum(
        estimate_s(isa, plan, list(DENSE) if native_bf16(isa) else ["fp32", "int8"]) for isa in isas
    )
    print(f"kernel ISAs {', '.join(isas)}; {len(plan['shapes'])} shapes x {len(plan['tokens'])} token counts x "
          f"{len(plan['sparsities'])} sparsities x {len(FORMATS)} formats, {plan['rounds']} rounds; "
          f"expected about {expected / 60:.1f} min on an idle machine (load now {load()})")  # fmt: skip
    if args.estimate:
        return 0
    started = time.perf_counter()
    tables = {isa: measure(isa, plan) for isa in isas}
    print(f"\nall ISAs: {(time.perf_counter() - started) / 60:.1f} min")
    out = args.out or (None if args.quick else TABLE)
    if out is None:
        return 0
    old: dict = {}
    if out.exists():
        old = json.loads(out.read_text(encoding="utf-8"))
        if old.get("schema") != crossover.SCHEMA:
            print(
                f"{out}: schema {old.get('schema', 1)} replaced; its tables ({', '.join(old.get('isas', {}))}) dropped"
            )
            old = {}
    about = "crossover sparsity per kernel ISA x sparse format x dense kind x Linear shape (benchmarks/kernels_layers.py)"
    measured = {isa: t for isa, t in tables.items() if t["entries"]}
    table = {"schema": crossover.SCHEMA, "about": about, **merge(old, measured, args.default)}
    crossover.normalise(table, str(out))
    from pruneofa.core.fsutil import write_atomically

    write_atomically(out, json.dumps(table, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def merge(old: dict, measured: dict[str, dict], make_default: bool) -> dict:
    """The file's ``tables`` and ``machines`` after this CPU's ``measured`` tables (ISA → table): a table
    of the same CPU model is replaced wherever it is; a default measured on another CPU stays the
    default, with this CPU's beside it under ``machines``, unless ``make_default``."""
    from pruneofa.core.cpu import detect_cpu
    from pruneofa.kernels import crossover

    cpu = detect_cpu()
    tables = dict(old.get("tables", {}))
    machines = {isa: list(others) for isa, others in old.get("machines", {}).items()}
    for isa, new in measured.items():
        others = [t for t in machines.get(isa, []) if not crossover.measured_here(t, cpu)]
        current = tables.get(isa)
        if current is None or crossover.measured_here(current, cpu):
            tables[isa] = new
        elif make_default:
            tables[isa], others = new, [current, *others]
        else:
            others = [*others, new]
            print(
                f"[{isa}] the default table stays {current.get('cpu')}'s; this CPU's is added under 'machines'"
            )
        if others:
            machines[isa] = others
        else:
            machines.pop(isa, None)
    return {"tables": tables, **({"machines": machines} if machines else {})}


def _cpu_name() -> str:
    try:
        import openvino as ov

        return str(ov.Core().get_property("CPU", "FULL_DEVICE_NAME"))
    except Exception:  # informational only
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
