"""The KServe v2 codec and the plain ``/predict`` inputs: request bodies → pipeline items, results → v2
output tensors, and the task's parameters checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pruneofa.deploy.config import ServeConfig
from pruneofa.deploy.pipeline import Pipeline
from pruneofa.deploy.serving.errors import HttpError, short
from pruneofa.deploy.serving.requests import check_text


def _int_between(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


_PARAMETERS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "text-classification": {
        "top_k": lambda v: v is None or _int_between(1, 1000)(v),
        "function_to_apply": lambda v: v in ("softmax", "sigmoid", "none"),
    },
    "token-classification": {
        "aggregation_strategy": lambda v: v in ("none", "simple"),
        "ignore_labels": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    },
    "fill-mask": {"top_k": _int_between(1, 100)},
    "question-answering": {
        "top_k": _int_between(1, 20),
        "max_answer_len": _int_between(1, 512),
        "handle_impossible_answer": lambda v: isinstance(v, bool),
        "align_to_words": lambda v: isinstance(v, bool),
    },
    "feature-extraction": {
        "pooling": lambda v: v in ("none", "mean", "cls", None),
        "normalize": lambda v: isinstance(v, bool),
    },
}


def check_parameters(task: str, parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise HttpError(400, '"parameters" must be a JSON object')
    allowed = _PARAMETERS[task]
    for key, value in parameters.items():
        if key not in allowed:
            raise HttpError(
                400, f"unknown parameter {key!r} for {task}; accepted: {', '.join(allowed) or 'none'}"
            )
        if not allowed[key](value):
            raise HttpError(400, f"invalid value {short(value)} for parameter {key!r}")
    return dict(parameters)


def plain_items(
    task: str, inputs: Any, config: ServeConfig, mask_token: str | None
) -> tuple[list[Any], bool]:
    many = isinstance(inputs, list)
    values = inputs if many else [inputs]
    if not values:
        raise HttpError(400, '"inputs" is an empty list')
    if len(values) > config.max_items:
        raise HttpError(413, f"{len(values)} inputs in one request, over the limit of {config.max_items}")
    items = []
    for index, value in enumerate(values):
        where = f"inputs[{index}]" if many else "inputs"
        if task == "question-answering":
            if not isinstance(value, dict) or set(value) != {"question", "context"}:
                raise HttpError(400, f'{where} must be {{"question": str, "context": str}}')
            question = check_text(value["question"], f"{where}.question", config)
            context = check_text(value["context"], f"{where}.context", config)
            if not question.strip() or not context.strip():
                raise HttpError(400, f"{where}: question and context must not be empty")
            items.append({"question": question, "context": context})
        elif task == "text-classification" and isinstance(value, dict):
            if not {"text"} <= set(value) <= {"text", "text_pair"}:
                raise HttpError(400, f'{where} must be a string or {{"text": str, "text_pair": str}}')
            pair = {"text": check_text(value["text"], f"{where}.text", config)}
            if "text_pair" in value:
                pair["text_pair"] = check_text(value["text_pair"], f"{where}.text_pair", config)
            items.append(pair)
        else:
            text = check_text(value, where, config)
            if task == "fill-mask" and mask_token and mask_token not in text:
                raise HttpError(400, f"{where} has no {mask_token} token to fill")
            items.append(text)
    return items, many


_V2_INPUTS = {"question-answering": ("question", "context"), "text-classification": ("text", "text_pair")}
_V2_REQUEST_KEYS = {"id", "inputs", "outputs", "parameters"}
_V2_TENSOR_KEYS = {"name", "shape", "datatype", "data", "parameters"}


def _v2_tensor(tensor: Any, names: tuple[str, ...], task: str, config: ServeConfig) -> tuple[str, list[str]]:
    """One KServe v2 input tensor, strictly: a known name, datatype BYTES, shape ``[N]`` for N strings."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise HttpError(400, "each input tensor is an object with name, shape, datatype and data")
    name = tensor["name"]
    if name not in names:
        raise HttpError(400, f"unknown input {short(name)}; this {task} model takes {', '.join(names)}")
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


def v2_items(task: str, body: Any, config: ServeConfig, mask_token: str | None) -> tuple[list[Any], dict]:
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
    names = _V2_INPUTS.get(task, ("text",))
    tensors: dict[str, list[str]] = {}
    for tensor in inputs:
        name, texts = _v2_tensor(tensor, names, task, config)
        if name in tensors:
            raise HttpError(400, f"input {name!r} is given twice; send each input tensor once")
        tensors[name] = texts
    required = names[:2] if task == "question-answering" else names[:1]
    missing = [n for n in required if n not in tensors]
    if missing:
        raise HttpError(400, f"missing input {missing[0]!r}")
    count = len(tensors[names[0]])
    if any(len(v) != count for v in tensors.values()):
        raise HttpError(400, "all input tensors must have the same number of elements")
    if task == "question-answering":
        items = [
            {"question": q, "context": c}
            for q, c in zip(tensors["question"], tensors["context"], strict=True)
        ]
        if any(not item["question"].strip() or not item["context"].strip() for item in items):
            raise HttpError(400, "question and context must not be empty")
    elif task == "text-classification" and "text_pair" in tensors:
        items = [
            {"text": t, "text_pair": p} for t, p in zip(tensors["text"], tensors["text_pair"], strict=True)
        ]
    else:
        items = tensors["text"]
    if task == "fill-mask" and mask_token:
        for i, text in enumerate(items):
            if text.count(mask_token) != 1:
                raise HttpError(400, f"text[{i}] must hold exactly one {mask_token} for the v2 endpoint")
    return items, body.get("parameters")


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def v2_outputs(task: str, results: list[Any]) -> list[dict[str, Any]]:
    n = len(results)
    if task == "text-classification":
        top = [r[0] if isinstance(r, list) else r for r in results]
        return [
            _tensor("label", "BYTES", [n], [t["label"] for t in top]),
            _tensor("score", "FP32", [n], [t["score"] for t in top]),
        ]
    if task == "question-answering":
        top = [r[0] if isinstance(r, list) else r for r in results]
        return [
            _tensor("answer", "BYTES", [n], [t["answer"] for t in top]),
            _tensor("score", "FP32", [n], [t["score"] for t in top]),
            _tensor("start", "INT64", [n], [t["start"] for t in top]),
            _tensor("end", "INT64", [n], [t["end"] for t in top]),
        ]
    if task == "fill-mask":
        k = len(results[0])
        flat = [option for r in results for option in r]
        return [
            _tensor("token_str", "BYTES", [n, k], [o["token_str"] for o in flat]),
            _tensor("score", "FP32", [n, k], [o["score"] for o in flat]),
            _tensor("token", "INT64", [n, k], [o["token"] for o in flat]),
            _tensor("sequence", "BYTES", [n, k], [o["sequence"] for o in flat]),
        ]
    if task == "token-classification":
        return [_tensor("entities", "BYTES", [n], [json.dumps(r) for r in results])]
    vectors = [list(map(float, v)) for v in results]
    width = len(vectors[0]) if vectors else 0
    return [_tensor("embedding", "FP32", [n, width], [x for v in vectors for x in v])]


def output_metadata(task: str, pipeline: Pipeline) -> list[dict[str, Any]]:
    specs = {
        "text-classification": [("label", "BYTES", [-1]), ("score", "FP32", [-1])],
        "question-answering": [
            ("answer", "BYTES", [-1]),
            ("score", "FP32", [-1]),
            ("start", "INT64", [-1]),
            ("end", "INT64", [-1]),
        ],
        "fill-mask": [
            ("token_str", "BYTES", [-1, -1]),
            ("score", "FP32", [-1, -1]),
            ("token", "INT64", [-1, -1]),
            ("sequence", "BYTES", [-1, -1]),
        ],
        "token-classification": [("entities", "BYTES", [-1])],
        "feature-extraction": [("embedding", "FP32", [-1, int(getattr(pipeline.config, "hidden_size", -1))])],
    }
    return [{"name": n, "datatype": d, "shape": s} for n, d, s in specs[task]]


def model_metadata(name: str, pipeline: Pipeline) -> dict[str, Any]:
    """The v2 model metadata: the task's input and output tensors, its runtime and maximum length."""
    task = pipeline.task.name
    names = _V2_INPUTS.get(task, ("text",))
    return {
        "name": name,
        "versions": ["1"],
        "platform": "openvino_ir" if pipeline.runtime == "openvino" else "onnxruntime_onnx",
        "inputs": [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in names],
        "outputs": output_metadata(task, pipeline),
        "parameters": {"task": task, "max_length": pipeline.max_length},
    }


def v2_parameters(task: str, parameters: Any) -> dict[str, Any]:
    """A v2 request's parameters, checked, with what the v2 outputs need filled in."""
    parameters = check_parameters(task, parameters)
    if task == "feature-extraction":
        parameters.setdefault("pooling", "mean")
        if parameters["pooling"] in (None, "none"):
            raise HttpError(400, "the v2 endpoint returns one vector per text: use pooling mean or cls")
    return parameters


def plain_result(task: str, inputs: Any, parameters: dict[str, Any], results: list[Any], many: bool) -> Any:
    """The ``/predict`` answer in the shape of Hugging Face's pipeline for ``inputs``."""
    if task == "feature-extraction":
        pooled = parameters.get("pooling") in ("mean", "cls")
        results = [r.tolist() if pooled else [r.tolist()] for r in results]
    if many:
        return results
    single = results[0]
    if task == "text-classification" and isinstance(inputs, str) and "top_k" not in parameters:
        single = [single]  # transformers' text-classification pipeline wraps a single string's result
    return single
