"""Calibration and evaluation inputs: examples of a task, tokenized by the exported folder's tokenizer.

Each item is one example as a batch of one (NNCF and ONNX Runtime collect statistics per inference),
restricted to the model's inputs, int64, with zero ``token_type_ids`` where the tokenizer has none.
Question answering goes through the standard stride-based feature preparation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pruneofa.core.data import Split, TextExample, load_examples
from pruneofa.core.qa import qa_window
from pruneofa.core.runtime import model_inputs
from pruneofa.core.tasks import TaskSpec

TEXT_MAX_LENGTH = 128


def tokenize_examples(
    task: TaskSpec, examples: list, tokenizer: Any, input_names: list[str], model_max_length: int
) -> list[dict[str, np.ndarray]]:
    """One feed per example (per feature for question answering)."""
    if task.kind == "question-answering":
        from pruneofa.core.qa import batches, prepare_qa_features

        length, stride = qa_window(model_max_length)
        features = prepare_qa_features(examples, tokenizer, max_length=length, stride=stride)
        return [{k: v for k, v in feed.items() if k in input_names} for feed in batches(features, 1)]
    feeds = []
    for example in examples:
        encoded = tokenizer(
            *example.texts,
            truncation=True,
            max_length=min(TEXT_MAX_LENGTH, model_max_length),
            return_tensors="np",
        )
        feeds.append(model_inputs(dict(encoded), input_names))
    return feeds


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
    """Labelled dev examples for accuracy-controlled quantization (classification and regression)."""
    examples = load_examples(task, data, split="dev", limit=limit)
    labelled = [e for e in examples if isinstance(e, TextExample)]
    if len(labelled) != len(examples):
        raise ValueError(f"accuracy control evaluates text examples with labels, not {task.name} examples")
    return tokenize_examples(task, examples, tokenizer, input_names, model_max_length), [
        e.label for e in labelled
    ]


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
