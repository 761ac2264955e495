"""Export figures for docs/export.md: the embedded all-MiniLM-L6-v2, dense and pruned, to both targets.

Variants (the pruned ones are made here by one-shot magnitude pruning, *not* trained: they show what
export does with zeros and dead structures, not the accuracy a trained sparse model has):
  dense          the weights as shipped
  unstructured90 90 % of every encoder Linear weight zeroed by magnitude (per matrix)
  structured     per layer, the 6 of 12 heads and 1152 of 1536 FFN neurons with the smallest weight norms
                 zeroed, exported with --shrink

Prints a Markdown table (wall time, file sizes, parity errors, Linear sparsity before/after) and
writes the manifests under --out. Run:  .venv/bin/python benchmarks/export_minilm.py --out bench-out/export
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pruneofa.core.modelio import default_model_path
from pruneofa.core.support import ARCHITECTURES
from pruneofa.exporter import export_model, make_config
from pruneofa.exporter.shrink import encoder_layers, submodule


def prune_copy(source: Path, target: Path, variant: str) -> Path:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source).eval()
    spec = ARCHITECTURES["bert"]
    with torch.no_grad():
        for layer in encoder_layers(model, spec):
            if variant == "unstructured90":
                for path in spec.linear_paths():
                    weight = submodule(layer, path).weight
                    threshold = weight.abs().flatten().kthvalue(int(0.9 * weight.numel())).values
                    weight[weight.abs() <= threshold] = 0.0
            else:
                q, k, v = (submodule(layer, p).weight for p in (spec.query, spec.key, spec.value))
                head_norm = (
                    q.view(12, -1).norm(dim=1) + k.view(12, -1).norm(dim=1) + v.view(12, -1).norm(dim=1)
                )
                for h in head_norm.argsort()[:6].tolist():
                    for w in (q, k, v):
                        w[h * 32 : (h + 1) * 32] = 0.0
                w_in, w_out = submodule(layer, spec.ffn_in).weight, submodule(layer, spec.ffn_out).weight
                dead = (w_in.norm(dim=1) * w_out.norm(dim=0)).argsort()[:1152]
                w_in[dead] = 0.0
                w_out[:, dead] = 0.0
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/export"))
    parser.add_argument("--parity-samples", type=int, default=48)
    args = parser.parse_args()
    source = default_model_path()
    rows = []
    for variant in ("dense", "unstructured90", "structured"):
        folder = source if variant == "dense" else prune_copy(source, args.out / f"model-{variant}", variant)
        for weight_format in ("fp32", "fp16") if variant != "structured" else ("fp32",):
            targets = ["openvino", "onnx"] if weight_format == "fp32" else ["openvino"]
            config = make_config(
                targets=targets,
                output=args.out / f"{variant}-{weight_format}",
                weight_format=weight_format,
                shrink=variant == "structured",
                parity_samples=args.parity_samples,
                overwrite=True,
            )
            started = time.perf_counter()
            results = export_model(str(folder), config, quiet=True)
            elapsed = time.perf_counter() - started
            for result in results:
                m = result.manifest
                model_bytes = sum(
                    size
                    for name, size in m.export.files.items()
                    if name.startswith(("model.", "openvino_model"))
                )
                worst = max(m.parity.outputs, key=lambda o: o.max_abs_error)
                rows.append(
                    f"| {variant} | {result.target} | {m.export.weight_format} | {elapsed:.1f} | {model_bytes / 1e6:.1f} "
                    f"| {worst.max_abs_error:.2e} | {worst.mean_abs_error:.2e} | {worst.argmax_agreement:.2%} "
                    f"| {m.sparsity.linear_sparsity_before:.2%} | {m.sparsity.linear_sparsity_after:.2%} "
                    f"| {m.sparsity.extra_zeros:,} | {m.sparsity.lost_zeros} | {m.sparsity.linear_numel:,} |"
                )
                print(rows[-1], file=sys.stderr, flush=True)
    print(
        "| variant | target | weights | export wall s (both targets) | model file MB | max abs err | mean abs err "
        "| argmax agreement | Linear sparsity before | after | extra zeros | lost zeros | Linear weights exported |"
    )
    print("|" + "---|" * 13)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
