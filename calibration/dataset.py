"""Calibration and evaluation inputs: examples of a task, tokenized by the exported folder's tokenizer.

Each item is one example as a batch of one (NNCF and ONNX Runtime collect statistics per inference),
restricted to the model's inputs, int64, with zero ``token_type_ids`` where the tokenizer has none.
Question answering goes through the standard stride-based feature preparation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pruneofa.core.data import Split, load_examples
from pruneofa.core.evaluation import encode, inference_window
from pruneofa.core.runtime import model_inputs
from pruneofa.core.tasks import TaskSpec


def tokenize_examples(
    task: TaskSpec, examples: list, tokenizer: Any, input_names: list[str], model_max_length: int
) -> list[dict[str, np.ndarray]]:
    """One feed per example (per SQuAD window for question answering), cut as every stage cuts its
    inputs at inference (:func:`pruneofa.core.evaluation.inference_window`)."""
    max_length, stride = inference_window(task, model_max_length)
    encoded = encode(task, examples, tokenizer, batch_size=1, max_length=max_length, stride=stride)
    return [model_inputs(feed, input_names) for feed in encoded.feeds]


def calibration_feeds(
    task: TaskSpec,
    data: str,
    tokenizer: Any,
    input_names: list[str],
    *,
    samples: int,
    seed: int,
    split: Split,
    model_max_length: int,
) -> list[dict[str, np.ndarray]]:
    """``samples`` examples drawn from ``data`` with ``seed`` (recorded by the caller), tokenized."""
    examples = load_examples(task, data, split=split, limit=samples, seed=seed)
    return tokenize_examples(task, examples, tokenizer, input_names, model_max_length)[:samples]


def evaluation_items(
    task: TaskSpec,
    data: str,
    tokenizer: Any,
    input_names: list[str],
    *,
    limit: int | None,
    model_max_length: int,
) -> tuple[list[dict[str, np.ndarray]], list]:
    """Labelled dev examples for accuracy-controlled quantization (classification and regression): one
    feed per example, and the examples they were made from (their labels score the model)."""
    examples = load_examples(task, data, split="dev", limit=limit)
    return tokenize_examples(task, examples, tokenizer, input_names, model_max_length), examples


def pad_to_common_length(feeds: list[dict[str, np.ndarray]], pad_id: int) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime's histogram calibrators (entropy, percentile) stack the outputs of all samples, so
    every sample must have the same length: pad to the longest, masked out."""
    width = max(feed["input_ids"].shape[1] for feed in feeds)
    padded = []
    for feed in feeds:
        extra = width - feed["input_ids"].shape[1]
        padded.append(
            {
                name: np.pad(
                    values, ((0, 0), (0, extra)), constant_values=pad_id if name == "input_ids" else 0
                )
                for name, values in feed.items()
            }
        )
    return padded
