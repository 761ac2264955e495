"""Inference tasks, one file each (pipeline, options, v2 tensors, warm-up, parity, evaluation), and the
registry that every user reads: :data:`INFERENCE_TASKS`."""

from pruneofa.core.inference.base import Encoder, InferenceTask, Parameter, Pipeline, Stats, Tensor
from pruneofa.core.inference.registry import INFERENCE_TASKS, get_inference_task

__all__ = [
    "INFERENCE_TASKS",
    "Encoder",
    "InferenceTask",
    "Parameter",
    "Pipeline",
    "Stats",
    "Tensor",
    "get_inference_task",
]
