"""The KServe v2 codec and the plain ``/predict`` inputs: request bodies → pipeline items, results → v2
output tensors, and the task's parameters checked. What differs between tasks (input and output tensors,
options, result shapes) is the task's declaration (:mod:`pruneofa.core.inference`); this module applies it
to untrusted bodies, so every problem is an :class:`HttpError` with one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.inference import InferenceTask, Pipeline
from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.serving.errors import HttpError, short
from pruneofa.deploy.serving.requests import check_text

_V2_REQUEST_KEYS = {"id", "inputs", "outputs", "parameters"}
_V2_TENSOR_KEYS = {"name", "shape", "datatype", "data", "parameters"}


@contextmanager
def _bad_request() -> Iterator[None]:
    """A task's own refusal of a request's shape (an InputError) answered 400."""
    try:
        yield
    except InputError as err:
        raise HttpError(400, str(err)) from None


def check_parameters(task: InferenceTask, parameters: Any) -> dict[str, Any]:
    """A request's ``parameters`` against the task's declared options (unknown names, bad values: 400)."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise HttpError(400, '"parameters" must be a JSON object')
    for key, value in parameters.items():
        declared = task.parameter(key)
        if declared is None:
            accepted = ", ".join(p.name for p in task.parameters) or "none"
            raise HttpError(400, f"unknown parameter {key!r} for {task.name}; accepted: {accepted}")
        if not declared.accepts(value):
            raise HttpError(400, f"invalid value {short(value)} for parameter {key!r}")
    return dict(parameters)


def _text_check(config: ServeConfig) -> Callable[[Any, str], str]:
    return lambda value, what: check_text(value, what, config)


def plain_items(
    task: InferenceTask, inputs: Any, config: ServeConfig, tokenizer: Any
) -> tuple[list[Any], bool]:
    """``/predict``'s ``inputs`` (one or a list) as pipeline items, and whether it was a list."""
    many = isinstance(inputs, list)
    values = inputs if many else [inputs]
    if not values:
        raise HttpError(400, '"inputs" is an empty list')
    if len(values) > config.max_items:
        raise HttpError(413, f"{len(values)} inputs in one request, over the limit of {config.max_items}")
    text = _text_check(config)
    with _bad_request():
        items = [
            task.plain_item(value, f"inputs[{index}]" if many else "inputs", text, tokenizer)
            for index, value in enumerate(values)
        ]
    return items, many


def _v2_tensor(
    tensor: Any, names: tuple[str, ...], task: InferenceTask, config: ServeConfig
) -> tuple[str, list[str]]:
    """One KServe v2 input tensor, strictly: a known name, datatype BYTES, shape ``[N]`` for N strings."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise HttpError(400, "each input tensor is an object with name, shape, datatype and data")
    name = tensor["name"]
    if name not in names:
        raise HttpError(400, f"unknown input {short(name)}; this {task.name} model takes {', '.join(names)}")
    unknown = set(tensor) - _V2_TENSOR_KEYS
    if unknown:
        fields = ", ".join(sorted(short(k, 30) for k in unknown))
        raise HttpError(400, f"input {name!r} has unknown field(s) {fields}; use name, shape, datatype, data")
    if tensor.get("datatype") != "BYTES":
        raise HttpError(
            400, f"input {name!r} must have datatype BYTES (text), not {short(tensor.get('datatype'))}"
        )
    shape, data = tensor.get("shape"), tensor.get("data")
    if not isinstance(data, list) or not data:
        raise HttpError(400, f"input {name!r}: data must be a non-empty list of strings")
    if len(data) > config.max_items:
        raise HttpError(413, f"{len(data)} texts in one request, over the limit of {config.max_items}")
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] != len(data)
    ):
        raise HttpError(
            400,
            f"input {name!r}: shape {short(shape)} does not match {len(data)} strings; send shape [{len(data)}]",
        )
    if "parameters" in tensor and not isinstance(tensor["parameters"], dict):
        raise HttpError(400, f"input {name!r}: parameters must be a JSON object")
    return name, [check_text(t, f"{name}[{i}]", config) for i, t in enumerate(data)]


def v2_items(task: InferenceTask, body: Any, config: ServeConfig, tokenizer: Any) -> tuple[list[Any], Any]:
    """A v2 infer request's input tensors as pipeline items, and its (unchecked) parameters."""
    if not isinstance(body, dict):
        raise HttpError(400, "the request must be a JSON object with an 'inputs' list")
    unknown = set(body) - _V2_REQUEST_KEYS
    if unknown:
        fields = ", ".join(sorted(short(k, 30) for k in unknown))
        raise HttpError(400, f"unknown field(s) {fields}; a v2 request has id, inputs, outputs, parameters")
    if "id" in body and not isinstance(body["id"], str):
        raise HttpError(400, "'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HttpError(400, "'inputs' must be a non-empty list of tensors")
    names = task.v2_inputs
    tensors: dict[str, list[str]] = {}
    for tensor in inputs:
        name, texts = _v2_tensor(tensor, names, task, config)
        if name in tensors:
            raise HttpError(400, f"input {name!r} is given twice; send each input tensor once")
        tensors[name] = texts
    missing = [n for n in task.v2_required if n not in tensors]
    if missing:
        raise HttpError(400, f"missing input {missing[0]!r}")
    count = len(tensors[names[0]])
    if any(len(v) != count for v in tensors.values()):
        raise HttpError(400, "all input tensors must have the same number of elements")
    with _bad_request():
        return task.v2_items(tensors, tokenizer), body.get("parameters")


def v2_parameters(task: InferenceTask, parameters: Any) -> dict[str, Any]:
    """A v2 request's parameters, checked, with what the v2 outputs need filled in.

    ``binary_data_output`` (Triton's binary tensor extension; ``tritonclient.http`` sets it whenever no
    outputs are named) is accepted and answered with JSON tensors, which Triton's clients decode as well."""
    if isinstance(parameters, dict) and "binary_data_output" in parameters:
        if not isinstance(parameters["binary_data_output"], bool):
            raise HttpError(400, "parameter 'binary_data_output' must be true or false")
        parameters = {k: v for k, v in parameters.items() if k != "binary_data_output"}
    parameters = check_parameters(task, parameters)
    with _bad_request():
        return task.v2_defaults(parameters)


def v2_outputs(task: InferenceTask, results: list[Any]) -> list[dict[str, Any]]:
    """The v2 output tensors of a batch of results, in the task's declared order and datatypes."""
    columns = task.v2_columns(results)
    return [
        {"name": t.name, "datatype": t.datatype, "shape": columns[t.name][0], "data": columns[t.name][1]}
        for t in task.v2_outputs
    ]


def model_metadata(name: str, pipeline: Pipeline) -> dict[str, Any]:
    """The v2 model metadata: the task's input and output tensors, its runtime and maximum length."""
    task = pipeline.task
    return {
        "name": name,
        "versions": ["1"],
        "platform": "openvino_ir" if pipeline.runtime == "openvino" else "onnxruntime_onnx",
        "inputs": [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in task.v2_inputs],
        "outputs": [
            {"name": t.name, "datatype": t.datatype, "shape": task.v2_shape(t, pipeline.config)}
            for t in task.v2_outputs
        ],
        "parameters": {"task": task.name, "max_length": pipeline.max_length},
    }
