"""``deploy.load``: every task on both runtimes gives what transformers' pipelines give on the same tiny
model (question answering, which transformers 5 no longer has, against a brute-force span search on the
PyTorch logits); batching, padding, truncation and bad input."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from pruneofa.core.errors import InputError
from pruneofa.core.runtime import load_parity_samples
from pruneofa.deploy.pipeline import load

TEXTS = load_parity_samples()["sentences"][:6]
RUNTIMES = [
    ("openvino", "openvino"),
    ("onnx", "onnxruntime"),
    ("onnx", "openvino"),
]  # (folder target, runtime)


@functools.cache
def _hf_pipeline(task: str, folder: str):
    import transformers

    return transformers.pipeline(task, model=folder, device="cpu")


def _pipelines(export_once, make_model, task):
    exported = export_once("bert", task)
    reference = _hf_pipeline(task, str(make_model("bert", task))) if task != "question-answering" else None
    for target, runtime in RUNTIMES:
        yield load(exported[target].output, runtime), reference


@pytest.mark.parametrize("target,runtime", RUNTIMES)
def test_runtime_is_chosen_from_the_folder_or_forced(export_once, target, runtime):
    folder = export_once("bert", "text-classification")[target].output
    pipe = load(folder, runtime)
    assert pipe.runtime == runtime and pipe.task.name == "text-classification"
    assert pipe.uses_openvino_tokenizer == (target == "openvino")  # only IR folders carry the tokenizer model
    assert load(folder).runtime == ("openvino" if target == "openvino" else "onnxruntime")
    assert "max 130 tokens" in pipe.describe()


def test_text_classification_matches_transformers(export_once, make_model):
    for pipe, reference in _pipelines(export_once, make_model, "text-classification"):
        for ours, theirs in zip(pipe(TEXTS), reference(TEXTS), strict=True):
            assert ours["label"] == theirs["label"] and ours["score"] == pytest.approx(
                theirs["score"], abs=1e-4
            )
        single = pipe(TEXTS[0])
        assert isinstance(single, list) and single[0]["label"] == reference(TEXTS[0])[0]["label"]
        ranked, expected = pipe(TEXTS[:2], top_k=None), reference(TEXTS[:2], top_k=None)
        for ours_row, theirs_row in zip(ranked, expected, strict=True):
            assert [d["label"] for d in ours_row] == [d["label"] for d in theirs_row]
            assert np.allclose([d["score"] for d in ours_row], [d["score"] for d in theirs_row], atol=1e-4)
        top2 = pipe(TEXTS[1], top_k=2)
        assert len(top2) == 2 and top2[0]["label"] == expected[1][0]["label"]
        pair = {"text": "the movie", "text_pair": "was a delight"}
        assert pipe(pair)["score"] == pytest.approx(reference(pair)["score"], abs=1e-4)
        raw = pipe(TEXTS[0], function_to_apply="none", top_k=None)
        assert not np.isclose(sum(d["score"] for d in raw), 1.0)


def test_token_classification_matches_transformers(export_once, make_model):
    for pipe, reference in _pipelines(export_once, make_model, "token-classification"):
        for strategy in ("none", "simple"):
            ours, theirs = (
                pipe(TEXTS, aggregation_strategy=strategy),
                reference(TEXTS, aggregation_strategy=strategy),
            )
            for ours_row, theirs_row in zip(ours, theirs, strict=True):
                assert len(ours_row) == len(theirs_row) > 0
                for a, b in zip(ours_row, theirs_row, strict=True):
                    keys = (
                        ("entity", "index", "word", "start", "end")
                        if strategy == "none"
                        else ("entity_group", "word", "start", "end")
                    )
                    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
                    assert a["score"] == pytest.approx(float(b["score"]), abs=1e-4)
        label = pipe.config.id2label[0]
        assert all(e["entity"] != label for e in pipe(TEXTS[0], ignore_labels=[label]))


def test_fill_mask_matches_transformers(export_once, make_model):
    for pipe, reference in _pipelines(export_once, make_model, "fill-mask"):
        texts = [
            "the movie was a [MASK] .",
            "[MASK] fox jumps over the dog",
            "one [MASK] and another [MASK] here",
        ]
        for text in texts:
            ours, theirs = pipe(text, top_k=4), reference(text, top_k=4)
            flat_ours = ours if isinstance(ours[0], dict) else [d for row in ours for d in row]
            flat_theirs = theirs if isinstance(theirs[0], dict) else [d for row in theirs for d in row]
            assert [d["token"] for d in flat_ours] == [d["token"] for d in flat_theirs]
            assert [d["token_str"] for d in flat_ours] == [d["token_str"] for d in flat_theirs]
            assert [d["sequence"] for d in flat_ours] == [d["sequence"] for d in flat_theirs]
            assert np.allclose([d["score"] for d in flat_ours], [d["score"] for d in flat_theirs], atol=1e-4)
        assert len(pipe(texts[:2])) == 2
        with pytest.raises(InputError, match="no \\[MASK\\]"):
            pipe("nothing to fill here")


def test_feature_extraction_matches_transformers(export_once, make_model):
    for pipe, reference in _pipelines(export_once, make_model, "feature-extraction"):
        ours, theirs = pipe(TEXTS), reference(TEXTS)
        for a, b in zip(ours, theirs, strict=True):
            assert np.asarray(a).shape == np.asarray(b).shape  # [1, tokens, hidden], padding removed
            assert np.allclose(a, b, atol=1e-4)
        pooled = pipe(TEXTS, pooling="mean", normalize=True, return_tensors=True)
        assert isinstance(pooled, np.ndarray) and pooled.shape == (len(TEXTS), 32)  # one row per text
        expected = np.asarray(theirs[0][0]).mean(axis=0)
        assert np.allclose(pooled[0], expected / np.linalg.norm(expected), atol=1e-4)
        assert pipe(TEXTS[0], pooling="cls", return_tensors=True).shape == (32,)
        hidden = pipe(TEXTS, return_tensors=True)  # unpooled: one (tokens, hidden) array per text
        assert [h.shape for h in hidden] == [np.asarray(t).shape[1:] for t in theirs]
        assert np.asarray(pipe(TEXTS[0], pooling="cls")).shape == (32,)


def _brute_force_answer(model, tokenizer, question, context, max_answer_len=15):
    """Best span by enumerating every allowed (start, end) on the PyTorch logits."""
    import torch

    encoded = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")[0]
    with torch.no_grad():
        out = model(**encoded)
    start, end = out.start_logits[0].numpy().astype(np.float64), out.end_logits[0].numpy().astype(np.float64)
    allowed = np.array([s == 1 for s in encoded.sequence_ids(0)])
    usable = allowed.copy()
    usable[0] = True  # CLS takes part in the softmax, as in transformers v4
    log_z_start = np.log(np.exp(start[usable] - start[usable].max()).sum()) + start[usable].max()
    log_z_end = np.log(np.exp(end[usable] - end[usable].max()).sum()) + end[usable].max()
    best = max(
        (
            (s, e)
            for s in np.nonzero(allowed)[0]
            for e in np.nonzero(allowed)[0]
            if s <= e < s + max_answer_len
        ),
        key=lambda se: start[se[0]] + end[se[1]],
    )
    score = float(np.exp(start[best[0]] - log_z_start + end[best[1]] - log_z_end))
    return int(offsets[best[0]][0]), int(offsets[best[1]][1]), score


def test_question_answering_matches_the_pytorch_span_search(export_once, make_model):
    import transformers

    source = make_model("bert", "question-answering")
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(source).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    pairs = load_parity_samples()["qa"][:4]
    for pipe, _ in _pipelines(export_once, make_model, "question-answering"):
        answers = pipe(
            [{"question": qa["question"], "context": qa["context"]} for qa in pairs], align_to_words=False
        )
        for qa, answer in zip(pairs, answers, strict=True):
            start, end, score = _brute_force_answer(model, tokenizer, qa["question"], qa["context"])
            assert (answer["start"], answer["end"]) == (start, end)
            assert answer["answer"] == qa["context"][start:end] and answer["score"] == pytest.approx(
                score, rel=1e-3
            )
        one = pipe(question=pairs[0]["question"], context=pairs[0]["context"], top_k=3)
        assert len(one) == 3 and one[0]["score"] >= one[1]["score"] >= one[2]["score"]
        worded = pipe(question=pairs[0]["question"], context=pairs[0]["context"])
        assert set(worded) == {"score", "start", "end", "answer"}
        assert worded["answer"] == pairs[0]["context"][worded["start"] : worded["end"]]


def test_long_inputs_are_truncated_with_a_warning(export_once, caplog):
    for target in ("openvino", "onnx"):
        pipe = load(export_once("bert", "text-classification")[target].output)
        long_text = " ".join(["the movie was a delight"] * 60)  # ~300 tokens, the model takes 130
        with caplog.at_level(logging.WARNING, logger="pruneofa.deploy"):
            result = pipe([long_text, "short"])
        assert len(result) == 2 and "truncated" in caplog.text and pipe.stats.truncated == 1
        caplog.clear()
        cut = pipe(" ".join(["the movie was a delight"] * 26), top_k=None)  # exactly fits after cutting
        assert len(cut) == 3
    qa = load(export_once("bert", "question-answering")["onnx"].output)
    context = " ".join(load_parity_samples()["qa"][0]["context"] for _ in range(12))  # windows, not a crash
    answer = qa(question="what is it?", context=context)
    assert answer["answer"] == context[answer["start"] : answer["end"]]


def test_batches_give_the_same_results_as_single_inputs(export_once):
    pipe = load(export_once("bert", "text-classification")["openvino"].output, batch_size=4)
    together = pipe(TEXTS, top_k=None)
    alone = [pipe(text, top_k=None) for text in TEXTS]
    for a, b in zip(together, alone, strict=True):
        assert np.allclose([d["score"] for d in a], [d["score"] for d in b], atol=1e-5)
    assert pipe.stats.batches >= 2 + len(TEXTS)


def test_openvino_tokenizer_agrees_with_the_hugging_face_tokenizer(export_once):
    pipe = load(export_once("bert", "fill-mask")["openvino"].output)
    assert pipe.uses_openvino_tokenizer
    texts = [*TEXTS, "the [MASK] was good", "A"]
    ours = pipe.encoder.encode(texts)
    theirs = pipe.tokenizer(texts, padding=True, return_tensors="np")
    for name in ("input_ids", "attention_mask"):
        assert np.array_equal(ours[name], theirs[name])


def test_bad_input_is_refused_with_a_fix(export_once, tmp_path):
    folder = export_once("bert", "text-classification")["openvino"].output
    with pytest.raises(InputError, match="is not a folder"):
        load(tmp_path / "missing")
    with pytest.raises(InputError, match="ONNX Runtime cannot run"):
        load(folder, "onnxruntime")
    with pytest.raises(InputError, match="unknown runtime"):
        load(folder, "tensorrt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no openvino_model.xml or model.onnx"):
        load(tmp_path / "empty")
    pipe = load(folder)
    with pytest.raises(InputError, match="must be a string"):
        pipe([1, 2])
    with pytest.raises(InputError, match="function_to_apply"):
        pipe("x", function_to_apply="tanh")
    qa = load(export_once("bert", "question-answering")["openvino"].output)
    with pytest.raises(InputError, match="question= and context="):
        qa(question="only a question")


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_a_manifest_task_the_model_cannot_answer_is_refused_at_load(export_once, tmp_path, target):
    import json
    import shutil

    folder = tmp_path / "mislabelled"
    shutil.copytree(export_once("bert", "text-classification")[target].output, folder)
    manifest = json.loads((folder / "pruneofa.json").read_text())
    manifest["export"]["task"] = "question-answering"
    (folder / "pruneofa.json").write_text(json.dumps(manifest))
    with pytest.raises(
        InputError, match=r"question-answering needs the outputs start_logits.*model has logits"
    ):
        load(folder)


# Texts the OpenVINO tokenizer model and the Hugging Face tokenizer once split differently: NUL, C0 and C1
# controls, noncharacters, an NFKC expander, combining marks, a compatibility letter, private-use and
# unassigned code points, characters newer than one of their Unicode tables.
EDGE_TEXTS = [
    "\x00",
    "\x00" * 8,
    "a\x00b",
    "\x01\x1f\x7f",
    "\x85\x9f",
    "\ufffe\uffff",
    "\ufdfa",
    "e\u0301",
    "\u0301\u0345",
    "\u017f",
    "\u07fd \u0890 \u0898",
    "\ue000 private",
    "\U000e0001",
    "\u0378 unassigned",
    "\u2e5a",
    "good \u0000 movie",
]


def test_the_served_and_library_paths_tokenize_and_score_edge_texts_alike(export_once):
    exported = export_once("bert", "text-classification")
    served = load(exported["openvino"].output)  # an IR folder: its OpenVINO tokenizer model
    library = load(exported["onnx"].output)  # the Hugging Face tokenizer
    assert served.uses_openvino_tokenizer and not library.uses_openvino_tokenizer
    for texts in [[text] for text in EDGE_TEXTS] + [EDGE_TEXTS, [*TEXTS, *EDGE_TEXTS]]:
        ours = served.encoder.encode(texts)
        theirs = library.encoder.encode(texts)
        for name in ("input_ids", "attention_mask"):
            assert np.array_equal(ours[name], theirs[name]), (texts, ours[name], theirs[name])
    for got, want in zip(served(EDGE_TEXTS, top_k=None), library(EDGE_TEXTS, top_k=None), strict=True):
        scores = {w["label"]: w["score"] for w in want}
        assert sorted(scores) == sorted(g["label"] for g in got)
        assert np.allclose([g["score"] for g in got], [scores[g["label"]] for g in got], atol=1e-4)
