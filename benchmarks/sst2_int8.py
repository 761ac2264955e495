"""SST-2 INT8 table for docs/calibrate-validate.md: accuracy, drop, agreement, size, calibration time and
INT8-vs-FP32 speed of the embedded all-MiniLM-L6-v2 with a classifier trained here.

Steps (all through pruneofa's own Python API, as the CLI would run them):
 1. train a classifier on SST-2 train, encoder frozen (the training issue fine-tunes properly): the
    encoder's [CLS] states of --train-examples sentences are computed once, then the pooler and the
    classifier are trained on them for a few epochs;
 2. export to OpenVINO IR and ONNX (FP32);
 3. calibrate INT8: OpenVINO with NNCF, ONNX static QDQ (MinMax) and ONNX dynamic, 300 train samples;
 4. validate every FP32 and INT8 folder against the PyTorch model on the whole SST-2 dev set (872);
 5. time each model on the same dev sentences, batch 1 and batch 16 (medians; ratios vs FP32 of the
    same runtime, measured in this one process).
Run:  .venv/bin/python benchmarks/sst2_int8.py --data ../shared/data/glue/SST-2 --out bench-out/sst2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pruneofa.calibration import calibrate_model
from pruneofa.calibration import make_config as calibrate_config
from pruneofa.core.data import load_examples
from pruneofa.core.modelio import default_model_path
from pruneofa.core.tasks import get_task
from pruneofa.deploy.config import ValidateConfig
from pruneofa.deploy.runners import open_model
from pruneofa.deploy.validation import validate_model
from pruneofa.exporter import export_model
from pruneofa.exporter import make_config as export_config


def train_classifier(data: str, out: Path, examples: int, epochs: int, seed: int) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = out / "model"
    if (folder / "model.safetensors").is_file():
        print(f"reusing the classifier trained earlier in {folder}", file=sys.stderr)
        return folder
    torch.manual_seed(seed)
    source = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    train = load_examples(get_task("sst2"), data, split="train", limit=examples, seed=seed)
    model.eval()
    states, labels = [], []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(train), 64):
            chunk = train[start : start + 64]
            enc = tokenizer(
                [e.texts[0] for e in chunk], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            states.append(model.bert(**enc).last_hidden_state[:, 0])
            labels += [e.label for e in chunk]
    states, targets = torch.cat(states), torch.tensor(labels)
    head = torch.nn.Sequential(model.bert.pooler, model.classifier)
    optimizer = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.01)
    for _ in range(epochs):
        order = torch.randperm(len(targets))
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            pooled = model.bert.pooler.activation(model.bert.pooler.dense(states[idx]))
            loss = torch.nn.functional.cross_entropy(model.classifier(pooled), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    print(
        f"trained the classifier on {len(train)} examples in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def time_model(location: str, sentences: list[str], batch: int, repeats: int) -> float:
    """Median ms per batch over the same sentences for every model."""
    from transformers import AutoTokenizer

    runner = open_model(location, "text-classification")
    tokenizer = AutoTokenizer.from_pretrained(runner.tokenizer_source)
    batches = [sentences[i : i + batch] for i in range(0, len(sentences), batch)][:repeats]
    feeds = []
    for texts in batches:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        feeds.append(feed)
    for feed in feeds[:3]:
        runner(feed)  # warm-up
    times = []
    for feed in feeds:
        t = time.perf_counter()
        runner(feed)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/glue/SST-2")
    parser.add_argument("--out", type=Path, default=Path("bench-out/sst2"))
    parser.add_argument("--train-examples", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = train_classifier(args.data, args.out, args.train_examples, args.epochs, args.seed)
    exported = export_model(
        str(model),
        export_config(targets=["openvino", "onnx"], output=args.out / "fp32", overwrite=True),
        quiet=True,
    )
    folders = {f"{r.target} FP32": r.output for r in exported}
    calibrations, calibrate_parity = {}, {}
    variants = (
        ("openvino INT8 NNCF", "openvino", "auto"),  # NNCF's own calibration: no --method
        ("onnx INT8 static MinMax", "onnx", "minmax"),
        ("onnx INT8 static Percentile", "onnx", "percentile"),
        ("onnx INT8 dynamic", "onnx", "dynamic"),
    )
    for label, target, method in variants:
        # dynamic quantization draws no calibration samples (calibrate refuses --samples/--seed with it)
        drawn = {} if method == "dynamic" else {"samples": args.samples, "seed": args.seed}
        config = calibrate_config(
            task="sst2",
            data=args.data,
            **drawn,
            method=method,
            output=args.out / label.replace(" ", "-"),
            overwrite=True,
            min_agreement=0.0,  # the benchmark records what each method does; validate is the gate
        )
        result = calibrate_model(args.out / "fp32" / target, config, quiet=True)
        folders[label] = result.output
        calibrations[label] = result.manifest.calibration
        calibrate_parity[label] = result.manifest.parity.outputs[0].argmax_agreement
    dev = load_examples(get_task("sst2"), args.data, split="dev")
    sentences = [e.texts[0] for e in dev]
    rows = []
    for label, folder in folders.items():
        report = validate_model(
            str(folder), ValidateConfig(reference=str(model), data=args.data, task="sst2"), quiet=True
        )
        weights = "openvino_model.bin" if label.startswith("openvino") else "model.onnx"
        size = (Path(folder) / weights).stat().st_size
        ms1 = time_model(str(folder), sentences, 1, 200)
        ms16 = time_model(str(folder), sentences, 16, 40)
        info = calibrations.get(label)
        parity_agreement = calibrate_parity[label] if label in calibrate_parity else None
        rows.append(
            dict(
                model=label,
                accuracy=report.candidate.metrics["accuracy"],
                reference=report.reference.metrics["accuracy"],
                drop=report.drop,
                agreement=report.agreement,
                max_abs_error=report.max_abs_error,
                passed=report.passed,
                size_mb=size / 1e6,
                calibration_s=info.wall_time_s if info else None,
                saturation=info.saturation_fix if info else "",
                ms_batch1=ms1,
                ms_batch16=ms16,
                calibrate_parity_agreement=parity_agreement,
                int8_extra_zeros=info
                and json.loads((Path(folder) / "pruneofa.json").read_text())["sparsity"]["extra_zeros"],
            )
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    torch_ms1 = time_model(str(model), sentences, 1, 200)
    torch_ms16 = time_model(str(model), sentences, 16, 40)
    fp32 = {r["model"].split()[0]: r for r in rows if "FP32" in r["model"]}
    print(
        f"PyTorch FP32 reference: accuracy {rows[0]['reference']:.2f}; {torch_ms1:.1f} ms (batch 1), {torch_ms16:.1f} ms (batch 16)"
    )
    print(
        "| model | SST-2 dev accuracy | drop (points) | agreement | max logit diff | gate (drop ≤ 1, agreement ≥ 99 %) "
        "| weights MB | calibration s | calibrate parity agreement | ms batch 1 | ms batch 16 | speed vs FP32 same runtime (b1 / b16) |"
    )
    print("|" + "---|" * 12)
    for r in rows:
        base = fp32[r["model"].split()[0]]
        print(
            f"| {r['model']} | {r['accuracy']:.2f} | {r['drop']:+.2f} | {r['agreement']:.2%} | {r['max_abs_error']:.3f} | "
            f"{'pass' if r['passed'] else 'FAIL'} | {r['size_mb']:.1f} | {r['calibration_s'] if r['calibration_s'] is not None else '–'} | "
            f"{format(r['calibrate_parity_agreement'], '.2%') if r['calibrate_parity_agreement'] is not None else '–'} | "
            f"{r['ms_batch1']:.1f} | {r['ms_batch16']:.1f} | {base['ms_batch1'] / r['ms_batch1']:.2f}x / {base['ms_batch16'] / r['ms_batch16']:.2f}x |"
        )
    (args.out / "results.json").write_text(
        json.dumps({"rows": rows, "torch_ms": [torch_ms1, torch_ms16]}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
