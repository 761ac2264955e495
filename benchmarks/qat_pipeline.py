"""The small-scale pipeline on SST-2 (`pruneofa run --recipe pipeline-small`) and its stage-by-stage table.

Runs the built-in `pipeline-small` recipe into OUT (resumable: run it again to continue). With
`--study DIR`, the stages that benchmarks/pruneofa_study.py already ran with exactly the same commands
(teacher-mlm, teacher-sst2, pruned-90, pruned-90-sst2) are linked into OUT first, so they are skipped
(`pruneofa run` checks that the recorded commands do the same work). Then it prints:

- SST-2 dev accuracy of every model, all measured by `pruneofa validate` the same way (full dev set,
  inputs up to the model's maximum length): dense teacher, 90 % sparse FP32, 90 % sparse INT8 by QAT,
  90 % sparse INT8 by post-training quantization only;
- model file sizes;
- the compression of the encoder's Linear weights, counted four ways (see docs/qat.md).

    .venv/bin/python benchmarks/qat_pipeline.py --out bench-out/pipeline --study bench-out/study
    .venv/bin/python benchmarks/qat_pipeline.py --out bench-out/pipeline --report
"""

from __future__ import annotations

import argparse
import json
import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pruneofa.core.manifest import read_manifest  # noqa: E402
from pruneofa.exporter.int8_weights import openvino_weights  # noqa: E402
from pruneofa.exporter.qat_export import OV_CONSUMER  # noqa: E402

REUSED = ("teacher-mlm", "teacher-sst2", "pruned-90", "pruned-90-sst2")


def link_study(out: Path, study: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in REUSED:
        if (study / name / "pruneofa.json").is_file() and not (out / name).exists():
            (out / name).symlink_to((study / name).resolve(), target_is_directory=True)
            print(f"linked {out / name} → {study / name}", file=sys.stderr)


def _validation(out: Path, name: str) -> dict:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _bytes(folder: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in folder.glob("*") if p.suffix in suffixes) if folder.is_dir() else 0


def encoder_linear_int8(folder: Path) -> tuple[int, int, int]:
    """(weights, non-zeros, xz-compressed bytes of the stored INT8 values) over the encoder's Linear weights."""
    import openvino as ov

    manifest = read_manifest(folder)
    wanted = {t.name for t in manifest.sparsity.tensors if t.linear and ".encoder." in f".{t.name}"}
    xml = folder / "openvino_model.xml"
    by_name, _ = openvino_weights(xml)
    total = nonzero = 0
    blobs, seen = [], set()
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.i8:
            continue
        for consumer, _port in by_name.get(op.get_friendly_name(), []):
            match = OV_CONSUMER.match(consumer)
            name = f"{match['module']}.weight" if match else None
            if name in wanted and name not in seen:
                seen.add(name)
                ints = np.asarray(op.get_data())
                total += ints.size
                nonzero += int((ints != 0).sum())
                blobs.append(ints.tobytes())
    if seen != wanted:
        raise SystemExit(f"{folder}: INT8 constants not found for {sorted(wanted - seen)[:3]}")
    return total, nonzero, len(lzma.compress(b"".join(blobs), preset=6))


def report(out: Path) -> str:
    rows = [
        "| model | SST-2 dev accuracy | vs 90 % FP32 | agreement with 90 % FP32 | weights file |",
        "|---|---|---|---|---|",
    ]
    reference = None
    for label, name, folder, suffixes in (
        ("dense MiniLM task teacher (FP32)", "validate-teacher", "teacher-sst2", (".safetensors",)),
        ("90 % sparse, FP32 (PyTorch)", None, "pruned-90-sst2", (".safetensors",)),
        ("90 % sparse, INT8 by QAT (OpenVINO)", "validate-qat-int8", "qat-sst2-openvino", (".bin",)),
        ("90 % sparse, INT8 by PTQ only (OpenVINO)", "validate-ptq-int8", "ptq-int8", (".bin",)),
    ):
        result = _validation(out, name) if name else _validation(out, "validate-qat-int8")
        if not result:
            rows.append(f"| {label} | (not run yet) | | | |")
            continue
        metric = result["primary_metric"]
        reference = result["reference"]["metrics"][metric]
        value = result["candidate"]["metrics"][metric] if name else reference
        agreement = f"{result['agreement']:.1%}" if name else "—"
        size = _bytes(out / folder, suffixes) / 1e6
        rows.append(f"| {label} | {value:.2f} | {value - reference:+.2f} | {agreement} | {size:.1f} MB |")
    lines = ["\n".join(rows)]
    qat = out / "qat-sst2"
    if (qat / "pruneofa.json").is_file():
        m = read_manifest(qat)
        lines.append(
            "\nPyTorch, seq 64 (pruneofa qat's own measurements): FP32 input "
            f"{m.qat.metric_before_qat['accuracy']:.2f}, after nncf.quantize only {m.qat.metric_ptq_only['accuracy']:.2f}, "
            f"after QAT {m.metrics['accuracy']:.2f}; {m.training.steps} QAT steps, {m.training.step_time_s:.2f} s/step; "
            f"{m.qat.saturation_fix}"
        )
    ov = out / "qat-sst2-openvino"
    if (ov / "pruneofa.json").is_file():
        total, nonzero, packed = encoder_linear_int8(ov)
        fp32 = 4 * total
        lines.append(
            "\n| encoder Linear weights, counted as | bytes | vs dense FP32 |\n|---|---|---|\n"
            f"| dense FP32 ({total:,} weights × 4 B) | {fp32:,} | 1x |\n"
            f"| paper's count: non-zeros × 1 B (INT8), no index ({nonzero:,} non-zeros) | {nonzero:,} | {fp32 / nonzero:.1f}x |\n"
            f"| non-zeros × 1 B + a 1-bit mask per position | {nonzero + total // 8:,} | {fp32 / (nonzero + total // 8):.1f}x |\n"
            f"| xz of the INT8 weights as stored (dense INT8 in the IR) | {packed:,} | {fp32 / packed:.1f}x |\n"
            f"| as stored in openvino_model.bin (dense INT8) | {total:,} | {fp32 / total:.1f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/pipeline"))
    parser.add_argument(
        "--study", type=Path, help="reuse the finished stages of benchmarks/pruneofa_study.py"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="the data root (glue/SST-2 and the study's corpus mix under corpus/), as the study reads it",
    )
    parser.add_argument("--report", action="store_true", help="only print the table of what is done")
    args = parser.parse_args()
    if not args.report:
        if args.study:
            link_study(args.out, args.study)
        command = [str(ROOT / ".venv/bin/pruneofa"), "run", "--recipe", "pipeline-small"]
        command += ["--output", str(args.out), "--data-root", str(args.data)]
        code = subprocess.call(command)
        if code not in (0, 1):
            return code
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
