"""The one table of inference tasks: serve, ``deploy.load``, output parity and validation look a task up
here. Adding a task is its file in this package plus one row below; ``tests/core/test_inference_tasks.py``
fails when a registered task lacks a piece (pipeline, parameters, v2 tensors, warm-up, parity,
evaluation)."""

from __future__ import annotations

from pruneofa.core.errors import InputError
from pruneofa.core.inference.base import InferenceTask
from pruneofa.core.inference.feature_extraction import FeatureExtraction
from pruneofa.core.inference.fill_mask import FillMask
from pruneofa.core.inference.question_answering import QuestionAnswering
from pruneofa.core.inference.text_classification import TextClassification
from pruneofa.core.inference.token_classification import TokenClassification
from pruneofa.core.inference.zero_shot_classification import ZeroShotClassification

INFERENCE_TASKS: dict[str, InferenceTask] = {
    task.name: task
    for task in (
        TextClassification(),
        TokenClassification(),
        QuestionAnswering(),
        FillMask(),
        FeatureExtraction(),
        ZeroShotClassification(),
    )
}


def get_inference_task(name: str) -> InferenceTask:
    """The task ``name``; a one-line error naming the known ones otherwise."""
    task = INFERENCE_TASKS.get(name)
    if task is None:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(INFERENCE_TASKS)}")
    return task
