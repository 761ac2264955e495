"""Reference and candidate on the same dev examples: the task they are validated on, the tokenizer, both
models run through the evaluation routine every stage shares (:mod:`pruneofa.core.evaluation`) on the
same batches, padded to each batch's longest sequence, their outputs read by the inference task's
evaluation hook (:attr:`pruneofa.core.inference.InferenceTask.evaluation`), and how far they differ."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pruneofa.core import modelio
from pruneofa.core.errors import InputError
from pruneofa.core.evaluation import (
    Evaluation,
    encode,
    evaluate_encoded,
    example_texts,
    inference_window,
)
from pruneofa.core.inference import InferenceTask
from pruneofa.core.manifest import read_manifest
from pruneofa.core.tasks import TaskSpec, get_task
from pruneofa.deploy.runners import Runner

_LENGTH_CHUNK = 1024  # examples tokenized at once to count their tokens


def task_for(candidate: str, requested: str | None) -> TaskSpec:
    """The task named by ``--task``, else the one the candidate was calibrated on (its pruneofa.json)."""
    if requested:
        return get_task(requested)
    manifest = read_manifest(Path(candidate)) if Path(candidate).is_dir() else None
    if manifest is not None and manifest.calibration is not None and manifest.calibration.task is not None:
        return get_task(manifest.calibration.task)
    raise InputError("cannot tell the task of the data; pass --task (e.g. sst2, mrpc, squad)")


def tokenizer_of(runner: Runner) -> Any:
    """The tokenizer saved beside a model (one-line error when there is none)."""
    try:
        return modelio.load_tokenizer(modelio.source_for(runner.tokenizer_source))
    except (OSError, ValueError) as err:
        raise InputError(
            f"no tokenizer in {runner.tokenizer_source}; export the model with its tokenizer"
        ) from err


@dataclass
class Compared:
    """Both models evaluated on the same feeds, and the largest difference between their outputs (over
    real tokens only, for question answering)."""

    reference: Evaluation
    candidate: Evaluation
    max_error: float


def compare(
    task: TaskSpec,
    inference: InferenceTask,
    examples: Sequence[Any],
    tokenizer: Any,
    reference: Runner,
    candidate: Runner,
    batch_size: int,
    quiet: bool,
) -> Compared:
    """Encode the examples once, cut to what both models allow, and evaluate each model on them, its
    outputs read by ``inference``'s evaluation hook."""
    max_length, stride = inference_window(task, min(reference.max_length, candidate.max_length))
    encoded = encode(task, examples, tokenizer, batch_size=batch_size, max_length=max_length, stride=stride)
    with tqdm(
        total=2 * len(encoded.feeds),
        desc="validating",
        unit="batch",
        disable=quiet,
        file=sys.stderr,
        leave=False,
    ) as bar:

        def counted(runner: Runner):
            def forward(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                outputs = runner(feed)  # each runner takes its own inputs (zero token_type_ids where needed)
                bar.update(1)
                return outputs

            return forward

        ours = evaluate_encoded(counted(reference), task, examples, encoded, inference, reference.config)
        theirs = evaluate_encoded(counted(candidate), task, examples, encoded, inference, candidate.config)
    largest = inference.evaluation.difference(encoded.feeds, ours.outputs, theirs.outputs)
    return Compared(ours, theirs, largest)


def token_lengths(tokenizer: Any, examples: Sequence[Any]) -> list[int]:
    """Tokens of each example's whole input (special tokens included, before truncation), so that the
    longest bucket also shows the inputs the model saw only part of."""
    lengths: list[int] = []
    for start in range(0, len(examples), _LENGTH_CHUNK):
        texts = [example_texts(e) for e in examples[start : start + _LENGTH_CHUNK]]
        encoded = tokenizer(*zip(*texts, strict=True), truncation=False, verbose=False)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return lengths
