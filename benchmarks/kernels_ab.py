"""Interleaved A/B of one model folder's variants: what one rewrite option (or the kernels themselves) buys
end to end, as ratios within one run.

``pruneofa benchmark`` compares deployable folders as the runtime loads them. This compiles each variant at
a static shape (batch × sequence fixed, as a server with a fixed input shape does) so that one option's
effect — the FFN pairs fused or not, SmoothQuant folded into the op or run as a Multiply, NNCF's attention
FakeQuantize kept or removed — stands out of this VM's noise: every round runs every variant for
``--seconds`` in turn, and the figure is the median over rounds of each round's median, beside the
fastest call. The first variant is the baseline of the ratios.

A variant is ``NAME=FOLDER[:OPTION...]`` (FOLDER holds ``openvino_model.xml``). Options: the kernel mode
``auto`` (default), ``on`` or ``off`` (OpenVINO alone); the rewrite's switches ``no-pairs``,
``no-siblings``, ``no-gelu``, ``fp32-compute`` (INT8 weights, FP32 compute), ``attention-quant`` (keep the
FakeQuantize nodes in front of attention's MatMuls), ``no-smooth-quant-fold`` (SmoothQuant's Multiply
stays a graph node), ``no-heads`` (Q, K and V stay token-major, the Transposes into heads stay), ``no-scale-fold``
(attention's scalar Q and K Multiplies stay graph nodes). ``--check`` prints each variant's largest output difference from the baseline on the
same feed (an exact change prints 0; a variant of another folder prints –). ``--profile NAME`` adds OpenVINO's per-node-type times for one variant.

The header names the CPU, its instruction sets, the kernel ISA and any ``ONEDNN_MAX_CPU_ISA`` cap. On a
CPU with AVX-512, the AVX2 class is measured with ``ONEDNN_MAX_CPU_ISA=AVX2 PRUNEOFA_KERNELS_ISA=avx2``
in front of the command (docs/kernels.md says what the cap does not reach).

Run:  .venv/bin/python benchmarks/kernels_ab.py base=FOLDER:no-smooth-quant-fold new=FOLDER \\
          [--batch 1 --batch 16] [--seq 128] [--rounds 6] [--seconds 2] [--check] [--profile new]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pruneofa.core.errors import InputError

# option → the keyword of pruneofa.kernels.rewrite it sets, and to what
SWITCHES: dict[str, tuple[str, bool]] = {
    "no-pairs": ("fuse_pairs", False),
    "no-siblings": ("fuse_siblings", False),
    "no-gelu": ("fuse_gelu", False),
    "fp32-compute": ("int8_compute", False),
    "attention-quant": ("attention_fp32", False),
    "no-smooth-quant-fold": ("fold_smooth_quant", False),
    "no-heads": ("fold_heads", False),
    "no-scale-fold": ("fold_scales", False),
}
MODES = ("auto", "on", "off")
MAX_VOCAB = 1_000_000  # a config.json's vocab_size beyond this is refused (it sizes the random ids)


@dataclass
class Variant:
    name: str
    folder: Path
    mode: str = "auto"
    switches: dict[str, bool] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = [self.mode] + [option for option, (key, _) in SWITCHES.items() if key in self.switches]
        return f"{self.folder} ({', '.join(extra)})"


def parse_variant(text: str) -> Variant:
    """``NAME=FOLDER[:OPTION...]`` → a Variant; a bad one raises ValueError with the fix in one line."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise ValueError(f"variant {text!r} is not NAME=FOLDER[:OPTION...]")
    folder, *options = spec.split(":")
    variant = Variant(name, Path(folder))
    for option in options:
        if option in MODES:
            variant.mode = option
        elif option in SWITCHES:
            key, value = SWITCHES[option]
            variant.switches[key] = value
        else:
            known = ", ".join((*MODES, *SWITCHES))
            raise ValueError(f"variant {name!r}: unknown option {option!r} (known: {known})")
    if not (variant.folder / "openvino_model.xml").is_file():
        raise ValueError(f"variant {name!r}: {variant.folder}/openvino_model.xml does not exist")
    if variant.mode == "off" and variant.switches:
        raise ValueError(f"variant {name!r}: rewrite options mean nothing with 'off' (OpenVINO alone)")
    return variant


def vocab_size(folder: Path) -> int:
    """The folder's vocabulary size from config.json (bounded), or 1,000 where it has none."""
    config = folder / "config.json"
    if not config.is_file():
        return 1000
    value = json.loads(config.read_text(encoding="utf-8")).get("vocab_size", 1000)
    if not isinstance(value, int) or not 2 <= value <= MAX_VOCAB:
        raise ValueError(f"{config}: vocab_size {value!r} is not an integer in [2, {MAX_VOCAB}]")
    return value


def make_feed(model: Any, batch: int, seq: int, vocab: int) -> dict[str, np.ndarray]:
    """Random token ids (seed 0, every variant the same), a full attention mask, token type 0."""
    rng = np.random.default_rng(0)
    feed = {}
    for port in model.inputs:
        name = port.get_any_name()
        if "mask" in name:
            feed[name] = np.ones((batch, seq), np.int64)
        elif "type" in name:
            feed[name] = np.zeros((batch, seq), np.int64)
        else:
            feed[name] = rng.integers(min(1000, vocab // 2), vocab, (batch, seq)).astype(np.int64)
    return feed


def compile_variant(
    core: Any, variant: Variant, batch: int, seq: int, config: dict
) -> tuple[Any, str, set[str]]:
    """The variant's model at [batch, seq], prepared as the runtime prepares it, compiled; its summary and
    the names of its sparse nodes (OpenVINO's profile calls every extension op "Reference"): single layers,
    fused pairs and fused shared-input groups alike."""
    import pruneofa.kernels as kernels
    from pruneofa.core.attention_guard import move_nan_guards

    model = core.read_model(str(variant.folder / "openvino_model.xml"))
    model.reshape({port.get_any_name(): [batch, seq] for port in model.inputs})
    summary = "OpenVINO alone (kernels off)"
    if variant.mode != "off":
        hint = config.get("INFERENCE_PRECISION_HINT")
        report = kernels.rewrite(model, variant.mode, precision_hint=hint, **variant.switches)  # type: ignore[arg-type]
        summary = report.summary().splitlines()[0]
        if report.sparse_layers:
            kernels.register(core)
    move_nan_guards(model)
    sparse = {op.get_friendly_name() for op in kernels.sparse_nodes(model)}
    return core.compile_model(model, "CPU", config), summary, sparse


def time_rounds(
    requests: dict[Any, tuple[Any, dict]], rounds: int, seconds: float
) -> tuple[dict[Any, list[float]], dict[Any, float]]:
    """Per key, each round's median latency (ms), and the fastest call over all rounds."""
    medians: dict[Any, list[float]] = {key: [] for key in requests}
    fastest: dict[Any, float] = dict.fromkeys(requests, float("inf"))
    for _ in range(rounds):
        for key, (request, feed) in requests.items():
            times = []
            end = time.perf_counter() + seconds
            while not times or time.perf_counter() < end:
                start = time.perf_counter()
                request.infer(feed)
                times.append((time.perf_counter() - start) * 1e3)
            medians[key].append(statistics.median(times))
            fastest[key] = min(fastest[key], min(times))
    return medians, fastest


def profile(compiled: Any, feed: dict, sparse: set[str], calls: int = 20, top: int = 15) -> list[str]:
    """OpenVINO's per-node-type execution times (PERF_COUNT), summed per (type, implementation); the nodes
    named in ``sparse`` (any of the extension's op types) are listed as SparseLinear."""
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer(feed)
    total: dict[tuple[str, str], float] = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()
    for _ in range(calls):
        request.infer(feed)
        for node in request.profiling_info:
            if node.status == node.Status.EXECUTED:
                kind = "SparseLinear" if node.node_name in sparse else node.node_type
                key = (kind, node.exec_type)
                total[key] += node.real_time.total_seconds() * 1e3 / calls
                count[key] += 1
    lines = [f"    sum of nodes {sum(total.values()):.3f} ms"]
    for key, ms in sorted(total.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"    {ms:8.3f} ms  {round(count[key] / calls):4d}x  {key[0]:26s} {key[1]}")
    return lines


def header() -> list[str]:
    from pruneofa.core.cpu import detect_cpu
    from pruneofa.kernels import library

    cpu = detect_cpu()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "none")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu.summary()}; INT8 class: {cpu.isa}",
        f"kernel ISA: {library.isa() or 'no kernels'}; ONEDNN_MAX_CPU_ISA: {cap}; load average: {load}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=FOLDER[:OPTION...]")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 16)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    parser.add_argument("--check", action="store_true", help="largest output difference from the baseline")
    parser.add_argument("--profile", metavar="NAME", help="per-node-type times of this variant")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(text) for text in args.variants]
        names = [variant.name for variant in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {', '.join(names)}")
        if args.profile is not None and args.profile not in names:
            raise ValueError(f"--profile {args.profile!r} names no variant (variants: {', '.join(names)})")
        batches = args.batch or [1, 16]
        if min(batches) < 1 or args.seq < 1 or args.rounds < 1 or args.seconds <= 0 or args.threads < 1:
            raise ValueError("--batch, --seq, --rounds, --threads must be ≥ 1 and --seconds > 0")
        vocab = min(vocab_size(variant.folder) for variant in variants)
        if args.json is not None:
            from pruneofa.core.fsutil import refuse_overlap

            refuse_overlap(args.json, [variant.folder for variant in variants], what="--json")
    except (ValueError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import openvino as ov

    core = ov.Core()
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": args.threads,
        "INFERENCE_PRECISION_HINT": args.precision,
    }
    lines = header()
    lines.append(
        f"seq {args.seq}, {args.threads} threads, {args.rounds} rounds × {args.seconds} s per variant"
    )
    print("\n".join(lines), flush=True)
    requests: dict[tuple[str, int], tuple[Any, dict]] = {}
    outputs: dict[tuple[str, int], np.ndarray] = {}
    for variant in variants:
        for batch in batches:
            compiled, summary, _ = compile_variant(core, variant, batch, args.seq, config)
            feed = make_feed(compiled, batch, args.seq, vocab)
            request = compiled.create_infer_request()
            outputs[(variant.name, batch)] = np.array(request.infer(feed)[compiled.outputs[0]])
            requests[(variant.name, batch)] = (request, feed)
        lines.append(f"{variant.name}: {variant.label}: {summary}")
        print(lines[-1], flush=True)  # compiling takes seconds per variant and batch: show each as it is done

    medians, fastest = time_rounds(requests, args.rounds, args.seconds)
    rows = [
        "| variant | batch | p50 ms | min ms | speed-up vs "
        + variants[0].name
        + (" | max abs diff |" if args.check else " |")
    ]
    rows.append("|---|---|---|---|---|" + ("---|" if args.check else ""))
    result = []
    for batch in batches:
        base = statistics.median(medians[(variants[0].name, batch)])
        for variant in variants:
            key = (variant.name, batch)
            p50, low = statistics.median(medians[key]), fastest[key]
            same_model = variant.folder.resolve() == variants[0].folder.resolve()
            diff = (
                float(np.abs(outputs[key] - outputs[(variants[0].name, batch)]).max()) if same_model else None
            )
            row = f"| {variant.name} | {batch} | {p50:.2f} | {low:.2f} | {base / p50:.2f}x |"
            rows.append(row + (f" {'–' if diff is None else f'{diff:.3g}'} |" if args.check else ""))
            result.append(
                {"variant": variant.name, "batch": batch, "p50_ms": p50, "min_ms": low, "max_abs_diff": diff}
            )
    print("\n".join(rows))

    if args.profile is not None:
        variant = next(v for v in variants if v.name == args.profile)
        for batch in batches:
            compiled, _, sparse = compile_variant(
                core, variant, batch, args.seq, {**config, "PERF_COUNT": True}
            )
            print(f"profile of {variant.name}, batch {batch}:")
            print("\n".join(profile(compiled, requests[(variant.name, batch)][1], sparse)))
    if args.json is not None:
        from pruneofa.core.fsutil import write_atomically

        write_atomically(args.json, json.dumps({"header": lines, "results": result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
