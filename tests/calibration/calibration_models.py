"""Tiny models whose INT8 behaviour is known in advance, for calibration tests that must not be flaky.

A tiny random classifier has logit margins of the same size as INT8 rounding error (on the packaged
inputs its INT8 twin agreed on 37-94 % of decisions from one run to the next), so a strict parity gate
on it fails by chance. ``margin_export`` trains one for a few steps (a hinge loss, no dropout)
until every input that calibration compares - the parity inputs of the sizes the tests use and the
SST-2 fixture's sentences - has a logit margin of at least ``MARGIN``, more than ten times the largest
INT8 error measured on it (0.28), so the default gates hold every time.

``outlier_export`` makes the opposite on purpose: the same model with an activation outlier that plain
INT8 cannot represent (FP32 outputs unchanged), so that accuracy control has to keep layers in float to
stay within ``--max-drop``.

Kept out of a conftest.py so that nothing here shadows ``from conftest import ...`` in other folders;
builds are cached per session here because each test module that imports a fixture gets its own copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

MARGIN = 3.0  # the smallest logit margin (logit of the label minus the other) on every trained input
_TARGET = 4.0  # the hinge loss pushes margins towards this
_PARITY_SIZES = (16, 24, 48)  # --parity-samples the tests use (random sequences differ by size)
_BUILT: dict[str, Path] = {}


def _training_batches(tokenizer) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """The fixture's SST-2 sentences with their labels (i % 2, as ``sst2_dir`` writes them), and every
    parity input calibration compares, labelled alternately."""
    from pruneofa.core.runtime import load_parity_samples, model_inputs
    from pruneofa.core.support import EXPORT_TASKS
    from pruneofa.exporter.parity import build_parity_batches

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sentences = load_parity_samples()["sentences"]
    encoded = model_inputs(dict(tokenizer(sentences, padding=True, return_tensors="np")), names)
    batches = [(encoded, np.arange(len(sentences)) % 2)]
    for size in _PARITY_SIZES:
        parity = build_parity_batches(
            tokenizer,
            EXPORT_TASKS["text-classification"],
            names,
            samples=size,
            max_length=128,
            vocab_size=len(tokenizer),
        )
        start = 0
        for batch in parity:
            count = len(batch["input_ids"])
            batches.append((batch, np.arange(start, start + count) % 2))
            start += count
    return [({k: torch.from_numpy(v) for k, v in b.items()}, torch.from_numpy(y)) for b, y in batches]


def _margins(model, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    logits = model(**batch).logits
    return (logits.gather(1, labels[:, None]) - logits.gather(1, 1 - labels[:, None])).squeeze(1)


def train_margins(model, batches, *, max_steps: int = 200) -> float:
    """Full-batch AdamW on a hinge loss until every margin is at least MARGIN (about a dozen steps, 2-3 s
    on one thread); returns the smallest margin."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.eval()  # no dropout: the margins measured are the margins the exported model has
    smallest = -float("inf")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend (4x slower on a busy 2-core machine)
    try:
        for _ in range(max_steps):
            for batch, labels in batches:
                torch.relu(_TARGET - _margins(model, batch, labels)).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                smallest = min(float(_margins(model, b, y).min()) for b, y in batches)
            if smallest >= MARGIN:
                break
    finally:
        torch.set_num_threads(threads)
    return smallest


@pytest.fixture(scope="session", name="margin_export")
def margin_export_fixture(tmp_path_factory, tokenizers_dir) -> Path:
    """The FP32 OpenVINO export of a tiny two-class BERT with every compared margin ≥ MARGIN."""
    if "margin" not in _BUILT:
        import transformers

        from pruneofa.exporter import export_model, make_config

        folder = tmp_path_factory.mktemp("margin-model")
        tokenizers_dir["bert"].save_pretrained(folder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)  # as export and calibrate read it
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(tiny_config("bert", len(tokenizer), num_labels=2))
        smallest = train_margins(model, _training_batches(tokenizer))
        assert smallest >= MARGIN, f"the margin model reached only {smallest:.2f}"
        model.save_pretrained(folder)
        _BUILT["margin-model"] = folder
        out = tmp_path_factory.mktemp("margin-export") / "openvino"
        (result,) = export_model(
            str(folder), make_config(targets=["openvino"], output=out, convert_tokenizer=False), quiet=True
        )
        _BUILT["margin"] = result.output
    return _BUILT["margin"]


def _export(name: str, folder: Path, target: str, tmp_path_factory) -> Path:
    from pruneofa.exporter import export_model, make_config

    out = tmp_path_factory.mktemp(f"{name}-export") / target
    (result,) = export_model(
        str(folder), make_config(targets=[target], output=out, convert_tokenizer=False), quiet=True
    )
    return result.output


def _outlier_model(tmp_path_factory, margin_model: Path, outlier: float = 1000.0) -> Path:
    """The margin model with an activation outlier INT8 cannot represent, and no change to its FP32
    outputs: in both layers, query unit 0 is the constant 1000 (zero weights, bias 1000) and key unit 0
    is 0, so the attention scores (query · key) are exactly what they were; but the INT8 scale of the
    queries now spans 0..350 after scaling, which crushes every other query unit (about ±3) to nothing
    and flattens the attention. Plain INT8 loses labels (81 % on the SST-2 fixture); keeping the
    attention-score MatMuls in float gets them back (ONNX Runtime's dynamic quantization does: it
    quantizes only MatMuls with a constant weight). ONNX Runtime's static QDQ keeps enough of the
    queries at 1000 to keep the labels, so its test uses a larger ``outlier``."""
    key = f"outlier-model-{outlier:g}"
    if key not in _BUILT:
        import transformers

        folder = tmp_path_factory.mktemp(key)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(margin_model)
        with torch.no_grad():
            for layer in model.bert.encoder.layer:
                attention = layer.attention.self
                attention.query.weight[0], attention.query.bias[0] = 0.0, outlier
                attention.key.weight[0], attention.key.bias[0] = 0.0, 0.0
        model.save_pretrained(folder)
        transformers.AutoTokenizer.from_pretrained(margin_model).save_pretrained(folder)
        _BUILT[key] = folder
    return _BUILT[key]


@pytest.fixture(scope="session", name="outlier_export")
def outlier_export_fixture(tmp_path_factory, margin_export) -> Path:
    """The FP32 OpenVINO export of the outlier model (:func:`_outlier_model`)."""
    if "outlier" not in _BUILT:
        _BUILT["outlier"] = _export(
            "outlier", _outlier_model(tmp_path_factory, _BUILT["margin-model"]), "openvino", tmp_path_factory
        )
    return _BUILT["outlier"]


@pytest.fixture(scope="session", name="outlier_onnx_export")
def outlier_onnx_export_fixture(tmp_path_factory, margin_export) -> Path:
    """The FP32 ONNX export of the outlier model: static QDQ fails parity on it, dynamic passes."""
    if "outlier-onnx" not in _BUILT:
        _BUILT["outlier-onnx"] = _export(
            "outlier", _outlier_model(tmp_path_factory, _BUILT["margin-model"], 1e5), "onnx", tmp_path_factory
        )
    return _BUILT["outlier-onnx"]


@pytest.fixture(scope="session", name="margin_onnx_export")
def margin_onnx_export_fixture(tmp_path_factory, margin_export) -> Path:
    """The FP32 ONNX export of the margin model (every compared margin ≥ MARGIN)."""
    if "margin-onnx" not in _BUILT:
        _BUILT["margin-onnx"] = _export("margin", _BUILT["margin-model"], "onnx", tmp_path_factory)
    return _BUILT["margin-onnx"]
