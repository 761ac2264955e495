"""Deployment figures for docs/deploy.md: the embedded all-MiniLM-L6-v2 (feature extraction) exported and
calibrated four ways, benchmarked in one run against PyTorch eager, ONNX Runtime FP32 and optimum-intel INT8,
plus the archive size ratio of ``pruneofa package --format archive``.

Variants (the pruned ones are one-shot magnitude pruned here, *not* trained, as in export_minilm.py: they
show speed and size, not the accuracy a trained sparse model has):
  dense-fp32          OpenVINO FP32 export of the weights as shipped
  dense-int8          that export calibrated to INT8 (NNCF, SST-2 sentences)
  unstructured90-int8 90 % of every encoder Linear weight zeroed by magnitude, exported, calibrated
  structured-int8     6 of 12 heads and 1152 of 1536 FFN neurons per layer zeroed, exported with --shrink, calibrated

Run:  .venv/bin/python benchmarks/deploy_minilm.py --out bench-out/deploy
(about 15 minutes on the 2-core machine of docs/deploy.md; the benchmark itself is --duration per variant
and batch size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from export_minilm import prune_copy  # benchmarks/ is on sys.path when run as a script

from pruneofa.calibration import calibrate_model
from pruneofa.calibration import make_config as calibrate_config
from pruneofa.core.modelio import default_model_path
from pruneofa.deploy.benchmarking import benchmark_model
from pruneofa.deploy.config import benchmark_config, package_config
from pruneofa.deploy.packaging import package_model
from pruneofa.exporter import export_model
from pruneofa.exporter import make_config as export_config

SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "SST-2"


def _sst2(out: Path) -> Path:
    """The real SST-2 folder where ../shared/data has it, else a small one made of the packaged sentences."""
    if (SST2 / "train.tsv").is_file():
        return SST2
    from pruneofa.core.runtime import load_parity_samples

    folder = out / "sst2-sentences"
    folder.mkdir(parents=True, exist_ok=True)
    rows = load_parity_samples()["sentences"]
    text = "sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(rows))
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/deploy"))
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300, help="calibration samples")
    parser.add_argument(
        "--reuse", action="store_true", help="keep folders and archive sizes a previous run wrote under --out"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = default_model_path()
    data = _sst2(out)
    started = time.perf_counter()

    folders = {}
    for variant in ("dense", "unstructured90", "structured"):
        fp32, int8 = out / f"{variant}-fp32", out / f"{variant}-int8"
        if args.reuse and (fp32 / "pruneofa.json").is_file() and (int8 / "pruneofa.json").is_file():
            folders.update({f"{variant}-int8": int8, **({"dense-fp32": fp32} if variant == "dense" else {})})
            continue
        model = source if variant == "dense" else prune_copy(source, out / f"model-{variant}", variant)
        print(f"[{time.perf_counter() - started:6.0f}s] exporting {variant}", file=sys.stderr, flush=True)
        export_model(
            str(model),
            export_config(
                targets=["openvino"],
                output=fp32,
                shrink=variant == "structured",
                parity_samples=16,
                overwrite=True,
            ),
            quiet=True,
        )
        print(f"[{time.perf_counter() - started:6.0f}s] calibrating {variant}", file=sys.stderr, flush=True)
        int8 = calibrate_model(
            fp32,
            calibrate_config(
                task="sst2",
                data=str(data),
                samples=args.samples,
                # argmax over an encoder's hidden units is a weak parity signal (82 % for dense MiniLM INT8
                # here); these folders are for speed and size, not accuracy
                min_agreement=0.5,
                output=out / f"{variant}-int8",
                overwrite=True,
            ),
            quiet=True,
        ).output
        if variant == "dense":
            folders["dense-fp32"] = fp32
        folders[f"{variant}-int8"] = int8

    sizes_file = out / "archive-sizes.json"
    sizes = json.loads(sizes_file.read_text(encoding="utf-8")) if args.reuse and sizes_file.is_file() else {}
    for name in ("dense-fp32", "dense-int8", "unstructured90-int8"):
        if name in sizes:
            continue
        print(f"[{time.perf_counter() - started:6.0f}s] archiving {name}", file=sys.stderr, flush=True)
        result = package_model(
            folders[name],
            package_config(format="archive", output=out / f"archive-{name}", overwrite=True),
            quiet=True,
        )
        sizes[name] = result.summary
    sizes_file.write_text(json.dumps(sizes, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(sizes, indent=2))

    ordered = [folders[k] for k in ("dense-fp32", "dense-int8", "unstructured90-int8", "structured-int8")]
    command = ["pruneofa", "benchmark", *map(str, ordered), "--batch", "1,16", "--seq", "128"]
    command += [
        "--duration",
        str(args.duration),
        "--repeats",
        str(args.repeats),
        "--output",
        str(out / "benchmark"),
    ]
    report = benchmark_model(
        ordered,
        benchmark_config(
            batches=[1, 16],
            seq=128,
            duration=args.duration,
            repeats=args.repeats,
            output=out / "benchmark",
            overwrite=True,
        ),
        command=command,
    )
    print((out / "benchmark" / "benchmark.md").read_text(encoding="utf-8"))
    print(f"total {time.perf_counter() - started:.0f} s; {report.statement}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
