"""Every registered inference task declares every piece a task is made of, so a new task cannot be added
half-way: its pipeline, its options, its KServe v2 tensors, a warm-up input, its parity and its
dev-set evaluation (or the reason it has none)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from pruneofa.core.inference import INFERENCE_TASKS, InferenceTask, Pipeline, get_inference_task
from pruneofa.core.inference.base import Evaluation, Parameter, Tensor
from pruneofa.core.parity_measures import ParityHook
from pruneofa.core.support import EXPORT_TASKS

REQUIRED = (
    "name",
    "export_task",
    "pipeline",
    "parameters",
    "v2_inputs",
    "v2_outputs",
    "parity",
    "evaluation",
)


def test_every_export_task_has_its_inference_task() -> None:
    assert set(EXPORT_TASKS) <= set(INFERENCE_TASKS)


@pytest.mark.parametrize("name", sorted(INFERENCE_TASKS))
def test_a_registered_task_declares_every_piece(name: str) -> None:
    task = INFERENCE_TASKS[name]
    missing = [piece for piece in REQUIRED if not hasattr(task, piece)]
    assert not missing, f"{name} lacks {missing}"
    assert task.name == name and task.export_task in EXPORT_TASKS
    assert inspect.isclass(task.pipeline) and issubclass(task.pipeline, Pipeline)
    assert task.pipeline is not Pipeline, f"{name} has no pipeline of its own"
    assert "__call__" in vars(task.pipeline) or any(
        "__call__" in vars(base)
        for base in task.pipeline.__mro__
        if base is not Pipeline and base is not object
    )
    assert all(isinstance(p, Parameter) and p.expected for p in task.parameters)
    assert len({p.name for p in task.parameters}) == len(task.parameters), "an option declared twice"
    assert task.v2_inputs and set(task.v2_required) <= set(task.v2_inputs)
    assert task.v2_outputs and all(isinstance(t, Tensor) for t in task.v2_outputs)
    assert type(task).v2_columns is not InferenceTask.v2_columns, f"{name} does not encode its v2 outputs"
    tokenizer = SimpleNamespace(mask_token="[MASK]")
    assert task.warmup_input(tokenizer) not in (None, "", [], {})
    assert isinstance(task.parity, ParityHook) and task.parity.rows and callable(task.parity.measure)
    assert all(row.measures for row in task.parity.rows)
    assert isinstance(task.evaluation, Evaluation)
    assert (task.evaluation.kinds and callable(task.evaluation.predictions)) or (
        not task.evaluation.kinds and task.evaluation.reason
    ), f"{name} neither evaluates on a dev set nor says why not"
    if task.evaluation.kinds:
        assert callable(task.evaluation.agreement) and callable(task.evaluation.difference)
    if "classification" in task.evaluation.kinds:
        assert callable(task.evaluation.label_scores), f"{name} gives no class scores in the data's labels"


def test_unknown_task_is_one_line() -> None:
    from pruneofa.core.errors import InputError

    with pytest.raises(InputError, match="unknown task 'sentiment'; choose one of"):
        get_inference_task("sentiment")
