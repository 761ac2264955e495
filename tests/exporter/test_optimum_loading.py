"""Exported folders load unchanged in optimum-intel's OVModelFor* classes and in ONNX Runtime,
and their outputs match the PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TASK_CLASSES

from pruneofa.core.support import EXPORT_TASKS


@pytest.mark.parametrize(
    "arch,task",
    [("bert", task) for task in TASK_CLASSES]
    + [("distilbert", "text-classification"), ("roberta", "question-answering")],
)
def test_openvino_folder_loads_in_optimum_intel(export_once, make_model, arch, task):
    import optimum.intel
    import transformers

    folder = export_once(arch, task)["openvino"].output
    # f32 execution: on CPUs with AVX512_BF16 or AMX, OpenVINO runs bf16 unless told otherwise (~1e-2 off)
    ov_model = getattr(optimum.intel, EXPORT_TASKS[task].optimum_ov_class).from_pretrained(
        folder, ov_config={"INFERENCE_PRECISION_HINT": "f32"}
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    if task == "question-answering":
        inputs = tokenizer(
            ["What is the capital of France?"], ["Paris is the capital of France."], return_tensors="pt"
        )
    else:
        inputs = tokenizer(["The movie was a delight.", "Terrible."], padding=True, return_tensors="pt")
    reference = (
        getattr(transformers, EXPORT_TASKS[task].auto_class).from_pretrained(make_model(arch, task)).eval()
    )
    with torch.no_grad():
        expected = reference(**inputs)
    got = ov_model(**inputs)
    for name in EXPORT_TASKS[task].outputs:
        np.testing.assert_allclose(np.asarray(got[name]), expected[name].numpy(), atol=1e-4)


def test_openvino_tokenizer_matches_hugging_face(export_once):
    import openvino as ov
    import transformers

    folder = export_once("bert", "text-classification")["openvino"].output
    assert (folder / "openvino_tokenizer.xml").is_file()
    compiled = ov.Core().compile_model(str(folder / "openvino_tokenizer.xml"), "CPU")
    texts = ["The movie was a delight from start to finish.", "Terrible."]
    got = compiled([np.array(texts)])
    expected = transformers.AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="np")
    np.testing.assert_array_equal(got["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])


def test_onnx_folder_runs_in_onnxruntime_with_its_tokenizer(export_once, make_model):
    import onnxruntime as ort
    import transformers

    folder = export_once("roberta", "text-classification")["onnx"].output
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(["A gentle, funny film.", "Worst service ever!!!"], padding=True, return_tensors="np")
    feed = {i.name: encoded[i.name].astype(np.int64) for i in session.get_inputs()}
    (logits,) = session.run(["logits"], feed)
    config = transformers.AutoConfig.from_pretrained(folder)
    assert logits.shape == (2, config.num_labels)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        make_model("roberta", "text-classification")
    )
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
