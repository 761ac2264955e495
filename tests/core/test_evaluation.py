"""The one dev-set evaluation routine: examples → feeds → a forward callable → predictions and metrics,
checked with forwards whose answers are known from the inputs alone."""

from __future__ import annotations

import numpy as np
import pytest

from pruneofa.core.data import QAExample, TextExample
from pruneofa.core.evaluation import (
    TEXT_MAX_LENGTH,
    encode,
    evaluate,
    example_texts,
    inference_window,
)
from pruneofa.core.tasks import get_task

SENTENCES = [
    "the movie was a delight",
    "a dull film",
    "the fox jumps over the lazy dog near the river bank",
    "fine",
    "the town hosts a festival every summer",
]


def _tokens(feed: dict[str, np.ndarray]) -> np.ndarray:
    return feed["attention_mask"].sum(-1)


def _by_length(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Class 1 for an odd number of real tokens: a prediction padding must not change."""
    odd = (_tokens(feed) % 2).astype(np.float32)
    return [np.stack([1.0 - odd, odd], axis=-1)]


def test_inference_window_cuts_sentences_at_the_text_length_and_squad_at_its_window():
    assert inference_window(get_task("sst2"), 512) == (TEXT_MAX_LENGTH, 0)
    assert inference_window(get_task("sst2"), 64) == (64, 0)
    assert inference_window(get_task("squad"), 512) == (384, 128)
    assert inference_window(get_task("squad"), 96) == (96, 32)


def test_classification_scores_the_argmax_and_batching_does_not_change_it(tokenizers_dir):
    tokenizer = tokenizers_dir["bert"]
    lengths = [len(tokenizer(s)["input_ids"]) for s in SENTENCES]
    examples = [
        TextExample((s,), n % 2, f"dev.tsv:{i}")
        for i, (s, n) in enumerate(zip(SENTENCES, lengths, strict=True))
    ]
    task = get_task("sst2")
    one = evaluate(_by_length, task, examples, tokenizer, batch_size=1, max_length=128)
    many = evaluate(_by_length, task, examples, tokenizer, batch_size=3, max_length=128)
    assert one.predictions.tolist() == many.predictions.tolist() == [n % 2 for n in lengths]
    assert one.metrics == many.metrics == {"accuracy": 100.0}
    assert [len(batch[0]) for batch in many.outputs] == [3, 2] and many.logits().shape == (5, 2)
    wrong = [TextExample(e.texts, 1 - e.label, e.source) for e in examples]
    assert evaluate(_by_length, task, wrong, tokenizer, batch_size=2, max_length=128).metrics == {
        "accuracy": 0.0
    }


def test_sentences_are_cut_at_max_length_and_pairs_stay_pairs(tokenizers_dir):
    tokenizer = tokenizers_dir["bert"]
    examples = [TextExample((a, b), 0.0, "x") for a, b in zip(SENTENCES, reversed(SENTENCES), strict=True)]
    encoded = encode(get_task("stsb"), examples, tokenizer, batch_size=2, max_length=8)
    assert [feed["input_ids"].shape[0] for feed in encoded.feeds] == [2, 2, 1]
    assert max(feed["input_ids"].shape[1] for feed in encoded.feeds) == 8
    assert all((feed["token_type_ids"] == 1).any() for feed in encoded.feeds)  # the second sentence
    assert example_texts(examples[0]) == (SENTENCES[0], SENTENCES[-1]) and encoded.features is None


def test_regression_scores_the_raw_output(tokenizers_dir):
    tokenizer = tokenizers_dir["bert"]
    examples = [TextExample((s,), float(len(tokenizer(s)["input_ids"])), "x") for s in SENTENCES]

    def count(feed):  # the score is the number of real tokens: a perfect correlation with the labels
        return [_tokens(feed).astype(np.float32)[:, None]]

    result = evaluate(count, get_task("stsb"), examples, tokenizer, batch_size=2, max_length=128)
    assert result.predictions.tolist() == [e.label for e in examples]
    assert result.metrics["pearson"] == pytest.approx(100.0)


def test_question_answering_reads_answers_back_through_the_windows(tokenizers_dir):
    tokenizer = tokenizers_dir["bert"]
    contexts = [SENTENCES[0], SENTENCES[2] + ". " + SENTENCES[4] + "."]  # the second is cut into windows
    examples = [
        QAExample("q1", "What was a delight?", contexts[0], ("the",), (0,), "t"),
        QAExample("q2", "What jumps?", contexts[1], ("the fox",), (0,), "t"),
    ]

    def first_context_token(feed):  # the answer is the first context token of each window
        ids = feed["input_ids"]
        start = np.zeros(ids.shape, dtype=np.float32)
        sep = (ids == tokenizer.sep_token_id).argmax(-1)
        start[np.arange(len(ids)), sep + 1] = 10.0
        return [start, start.copy()]

    task = get_task("squad")
    windows = encode(task, examples, tokenizer, batch_size=4, max_length=24, stride=8).features
    assert len(windows) > len(examples)  # the long context was cut into overlapping windows
    one = evaluate(first_context_token, task, examples, tokenizer, batch_size=1, max_length=24, stride=8)
    many = evaluate(first_context_token, task, examples, tokenizer, batch_size=4, max_length=24, stride=8)
    assert one.predictions == many.predictions == {"q1": "the", "q2": "the"}
    assert one.metrics == many.metrics
    assert one.metrics["exact_match"] == pytest.approx(50.0) and set(one.metrics) == {"exact_match", "f1"}
    assert example_texts(examples[0]) == ("What was a delight?", contexts[0])
