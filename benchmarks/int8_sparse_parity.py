"""How far the INT8 sparse op's model is from OpenVINO's own dense INT8 execution of the same IR.

Usage: ``python benchmarks/int8_sparse_parity.py INT8_FOLDER FP32_FOLDER [--mode on|auto] [--texts N]``
(folders written by ``pruneofa calibrate`` and ``pruneofa export``; SST-2 dev sentences from
``--data``, default ../shared/data/glue/SST-2, padded to ``--seq`` tokens). Prints the difference of the
rewritten model (INT8 compute, FakeQuantize folded) from the dense INT8 IR, and the dense INT8 IR's own
difference from FP32 for scale: max, mean, 99th / 99.9th percentile, tokens moved by more than 0.05.
``PRUNEOFA_KERNELS_ISA=avx2|scalar`` picks another route. docs/kernels.md ("INT8 compute") has results.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("int8_folder", type=Path)
    parser.add_argument("fp32_folder", type=Path)
    parser.add_argument("--mode", choices=("on", "auto"), default="on")
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/glue/SST-2"))
    args = parser.parse_args()

    import openvino as ov
    from transformers import AutoTokenizer

    import pruneofa.kernels as kernels

    lines = (args.data / "dev.tsv").read_text().splitlines()[1 : args.texts + 1]
    tokenizer = AutoTokenizer.from_pretrained(args.int8_folder)
    enc = tokenizer(
        [line.split("\t")[0] for line in lines], padding="max_length", max_length=args.seq, truncation=True,
        return_tensors="np",
    )  # fmt: skip
    feed = {name: value.astype(np.int64) for name, value in enc.items()}
    mask = enc["attention_mask"].astype(bool)
    core = ov.Core()
    kernels.register(core)
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    xml = str(args.int8_folder / "openvino_model.xml")
    dense = core.compile_model(core.read_model(xml), "CPU", config)(feed)[0][mask]
    model = core.read_model(xml)
    report = kernels.rewrite(model, args.mode, int8_compute=True)
    print(report.summary())
    sparse = core.compile_model(model, "CPU", config)(feed)[0][mask]
    fp32_xml = str(args.fp32_folder / "openvino_model.xml")
    fp32 = core.compile_model(core.read_model(fp32_xml), "CPU", config)(feed)[0][mask]
    print(f"route {kernels.int8_route()} ({kernels.int8_levels()} activation levels); {len(dense)} tokens")
    scale = float(np.abs(dense).mean())
    for label, diff in (
        ("sparse INT8 vs dense INT8", np.abs(sparse - dense)),
        ("dense INT8 vs FP32", np.abs(dense - fp32)),
    ):
        print(
            f"{label:<26} max {diff.max():.4g}  mean {diff.mean():.4g} ({diff.mean() / scale:.2%} of mean |output|)  "
            f"p99 {np.quantile(diff, 0.99):.4g}  p99.9 {np.quantile(diff, 0.999):.4g}  "
            f"tokens > 0.05: {(diff.max(axis=1) > 0.05).sum()}"
        )


if __name__ == "__main__":
    main()
