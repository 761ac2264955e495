"""Dev-set evaluation with the task's official metric, whatever runs the model.

Training (a PyTorch model on its device), calibration (NNCF's accuracy control on an OpenVINO model)
and ``pruneofa validate`` (exported folders and PyTorch references) score a model the same way:
examples are encoded into batches of input feeds (question answering as SQuAD's overlapping windows),
a *forward* callable maps each feed to the model's outputs, and the outputs become predictions (a
label id, a score, an answer text) that :func:`pruneofa.core.metrics.compute_metrics` scores. Only
the forward differs between them, so a metric measured at one stage means the same at the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruneofa.core.data import QAExample
from pruneofa.core.inference import INFERENCE_TASKS, InferenceTask
from pruneofa.core.metrics import compute_metrics
from pruneofa.core.qa import QA_STRIDE, QAFeatures, batches, postprocess_qa, prepare_qa_features, qa_window
from pruneofa.core.tasks import TaskSpec

# Tokens a sentence (or sentence pair) is cut to at inference, where the model's positions allow it:
# GLUE sentences rarely need more, and every stage that runs a model on them cuts them alike.
TEXT_MAX_LENGTH = 128

Feed = dict[str, np.ndarray]
# A batch of input feeds → the model's outputs, in the task's order (logits; start and end logits).
Forward = Callable[[Feed], Sequence[np.ndarray]]


def inference_window(task: TaskSpec, model_max_length: int) -> tuple[int, int]:
    """``(max_length, stride)`` for :func:`encode` at inference: sentences cut at
    :data:`TEXT_MAX_LENGTH` tokens (stride unused), SQuAD contexts in SQuAD's usual window, both
    shrunk to what the model's position embeddings allow."""
    if task.kind == "question-answering":
        return qa_window(model_max_length)
    return min(TEXT_MAX_LENGTH, model_max_length), 0


def example_texts(example: Any) -> tuple[str, ...]:
    """What the tokenizer reads of one example: its sentence(s), or a question and its context."""
    return (example.question, example.context) if isinstance(example, QAExample) else example.texts


@dataclass(frozen=True)
class Encoded:
    """Examples as model inputs: one feed per batch (numpy, the tokenizer's names and int64 ids), each
    padded to its batch's longest sequence; ``features`` are the SQuAD windows the answers are read
    back from (question answering only)."""

    feeds: list[Feed]
    features: QAFeatures | None = None


def encode(
    task: TaskSpec,
    examples: Sequence[Any],
    tokenizer: Any,
    *,
    batch_size: int,
    max_length: int,
    stride: int = QA_STRIDE,
) -> Encoded:
    """Tokenize ``examples`` in batches of ``batch_size``: sentences truncated at ``max_length`` tokens;
    question answering in windows of ``max_length`` tokens overlapping by ``stride``, each window a row."""
    if task.kind == "question-answering":
        features = prepare_qa_features(examples, tokenizer, max_length=max_length, stride=stride)
        return Encoded(list(batches(features, batch_size)), features)
    feeds = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        columns = list(zip(*(e.texts for e in chunk), strict=True))
        encoded = tokenizer(
            *columns, padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
        feeds.append(dict(encoded))
    return Encoded(feeds)


@dataclass
class Evaluation:
    """One model on the examples: the task's metrics (percent), its predictions (label ids, scores, or
    answer text by question id) and, per batch, the outputs they were read from."""

    metrics: dict[str, float]
    predictions: Any
    outputs: list[list[np.ndarray]]
    label_logits: np.ndarray | None = None  # classification: the logits as columns of the data's labels

    def logits(self) -> np.ndarray:
        """The first output of every batch, stacked (n × classes, or n × 1 scores): text tasks."""
        return np.concatenate([batch[0] for batch in self.outputs])

    def class_logits(self) -> np.ndarray:
        """Classification logits as columns of the data task's labels (the head's own order where the
        evaluation hook keeps it)."""
        return self.label_logits if self.label_logits is not None else self.logits()


def scoring_task(task: TaskSpec, inference: InferenceTask | None = None) -> InferenceTask:
    """The inference task whose evaluation hook scores a model on ``task``'s data: ``inference`` where
    given (zero-shot classification of an NLI model), else the one running the data task's export task."""
    return inference if inference is not None else INFERENCE_TASKS[task.export_task]


def predictions(
    task: TaskSpec,
    examples: Sequence[Any],
    encoded: Encoded,
    outputs: list[list[np.ndarray]],
    inference: InferenceTask | None = None,
    model_config: Any = None,
):
    """What the model predicts for each example, from its per-batch outputs, as the inference task's
    evaluation hook reads them (:attr:`pruneofa.core.inference.InferenceTask.evaluation`): the label id
    (classification), the score (regression), or the answer text by question id (question answering)."""
    hook = scoring_task(task, inference).evaluation
    predict = hook.predictions
    if predict is None:
        raise ValueError(f"the inference task that scores {task.name} declares no predictions hook")
    if "question-answering" in hook.kinds:
        if encoded.features is None:
            raise ValueError("question answering outputs are read back through the encoded SQuAD windows")
        starts, ends = [batch[0] for batch in outputs], [batch[1] for batch in outputs]
        return predict(postprocess_qa(examples, encoded.features, starts, ends), task, model_config)
    if not outputs:
        return np.zeros(0)  # nothing to score: compute_metrics says so in one line
    return predict(np.concatenate([batch[0] for batch in outputs]), task, model_config)


def evaluate_encoded(
    forward: Forward,
    task: TaskSpec,
    examples: Sequence[Any],
    encoded: Encoded,
    inference: InferenceTask | None = None,
    model_config: Any = None,
) -> Evaluation:
    """Run ``forward`` on every feed of ``encoded`` (made from ``examples``) and score it, reading the
    outputs with ``inference``'s evaluation hook (see :func:`scoring_task`); ``model_config`` is the
    model's transformers config, for hooks that read its labels."""
    outputs = [[np.asarray(output) for output in forward(feed)] for feed in encoded.feeds]
    predicted = predictions(task, examples, encoded, outputs, inference, model_config)
    references = examples if task.kind == "question-answering" else [e.label for e in examples]
    evaluation = Evaluation(compute_metrics(task, predicted, references), predicted, outputs)
    label_scores = scoring_task(task, inference).evaluation.label_scores
    if label_scores is not None and task.kind == "classification" and outputs:
        evaluation.label_logits = label_scores(evaluation.logits(), task, model_config)
    return evaluation


def evaluate(
    forward: Forward,
    task: TaskSpec,
    examples: Sequence[Any],
    tokenizer: Any,
    *,
    batch_size: int,
    max_length: int,
    stride: int = QA_STRIDE,
) -> Evaluation:
    """Encode ``examples`` (see :func:`encode`) and score the model ``forward`` runs on them."""
    encoded = encode(task, examples, tokenizer, batch_size=batch_size, max_length=max_length, stride=stride)
    return evaluate_encoded(forward, task, examples, encoded)
