"""Property-based fuzzing of ``pruneofa serve`` (issue 17): generated requests against every route of the
app's own OpenAPI description, for every task, on a real server on loopback. The property: no 500, every
error a one-line ``{"error": ...}``, and the server healthy and answering correctly afterwards.

Bounded for CI (``PRUNEOFA_FUZZ_EXAMPLES`` per task, default 150) and deterministic (``derandomize``); the
figures in docs/deploy.md come from the same test with more examples:
``PRUNEOFA_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest -q -s tests/deploy/test_serve_fuzz.py``.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import running

from pruneofa.deploy.pipeline import load

# Hypothesis keeps caches in ./.hypothesis by default: keep the repository clean.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "pruneofa-hypothesis")
)

EXAMPLES = int(os.environ.get("PRUNEOFA_FUZZ_EXAMPLES", "150"))
TASKS = {
    "text-classification": "openvino",
    "question-answering": "onnx",
    "fill-mask": "openvino",
    "token-classification": "onnx",
    "feature-extraction": "openvino",
}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
NAMES = ("text", "text_pair", "question", "context", "image", "TEXT", "", "text ")
PARAMETERS = (
    "top_k",
    "function_to_apply",
    "aggregation_strategy",
    "ignore_labels",
    "max_answer_len",
    "handle_impossible_answer",
    "align_to_words",
    "pooling",
    "normalize",
    "temperature",
)

# --- generated values ----------------------------------------------------------------------------------

SPECIAL_TEXTS = st.sampled_from(
    [
        "",
        " ",
        "a fine film",
        "\ud800",
        "x \udfff y",
        "[MASK]",
        "the [MASK] is [MASK]",
        "<mask>",
        "\x00",
        "\u2028",
        "é" * 50,
        "a" * 501,
        "word " * 120,
        "😀" * 10,
    ]
)
TEXTS = st.one_of(
    SPECIAL_TEXTS,
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Lu", "Zs", "Cc"]), max_size=10),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 5, 20, 100, 1000, 1001, 2**64, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
SCALARS = st.one_of(st.none(), NUMBERS, TEXTS)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(TEXTS, st.sampled_from(NAMES)), children, max_size=4),
    ),
    max_leaves=12,
)
PARAMETER_VALUES = st.one_of(
    SCALARS,
    st.sampled_from(["softmax", "sigmoid", "none", "simple", "mean", "cls", None, True, False]),
    st.lists(TEXTS, max_size=3),
    JSON,
)


@st.composite
def parameters(draw) -> Any:
    return draw(
        st.one_of(
            st.none(),
            st.dictionaries(st.sampled_from(PARAMETERS), PARAMETER_VALUES, max_size=3),
            JSON,
        )
    )


@st.composite
def predict_body(draw) -> Any:
    item = st.one_of(
        TEXTS,
        st.fixed_dictionaries({"question": TEXTS, "context": TEXTS}),
        st.fixed_dictionaries({"text": TEXTS}, optional={"text_pair": TEXTS}),
        JSON,
    )
    inputs = draw(st.one_of(item, st.lists(item, max_size=10), JSON))
    body: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        body["parameters"] = draw(parameters())
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["extra", "id", "Inputs"]))] = draw(JSON)
    return draw(st.one_of(st.just(body), JSON)) if draw(st.integers(0, 7)) == 0 else body


@st.composite
def tensor(draw) -> Any:
    data = draw(st.one_of(st.lists(TEXTS, min_size=0, max_size=6), JSON))
    size = len(data) if isinstance(data, list) else 1
    shape = draw(
        st.one_of(
            st.just([size]),
            st.lists(st.one_of(st.integers(-3, 10), st.sampled_from([2**64, True, 1.0, "1"])), max_size=3),
            JSON,
        )
    )
    out = {
        "name": draw(st.one_of(st.sampled_from(NAMES), JSON)),
        "shape": shape,
        "datatype": draw(st.one_of(st.sampled_from(["BYTES", "FP32", "INT64", "bytes"]), JSON)),
        "data": data,
    }
    for key in draw(st.lists(st.sampled_from(["name", "shape", "datatype", "data"]), max_size=1)):
        out.pop(key)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.sampled_from(["parameters", "x"]))] = draw(JSON)
    return out


@st.composite
def v2_body(draw) -> Any:
    body: dict[str, Any] = {"inputs": draw(st.one_of(st.lists(tensor(), max_size=3), JSON))}
    if draw(st.booleans()):
        body["id"] = draw(st.one_of(TEXTS, JSON))
    if draw(st.booleans()):
        body["parameters"] = draw(parameters())
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["outputs", "extra"]))] = draw(JSON)
    return draw(st.one_of(st.just(body), JSON)) if draw(st.integers(0, 7)) == 0 else body


CLEAN_TEXTS = st.one_of(
    st.text(min_size=1, max_size=60).filter(str.strip),  # hypothesis leaves out surrogates by default
    st.sampled_from(
        ["a fine film", "\x00 x", "line\u2028break", "é" * 50, "word " * 99, "😀 " * 10, "a" * 500]
    ),
)
VALID_PARAMETERS = {
    "text-classification": {
        "top_k": st.one_of(st.none(), st.integers(1, 5)),
        "function_to_apply": st.sampled_from(["softmax", "sigmoid", "none"]),
    },
    "token-classification": {
        "aggregation_strategy": st.sampled_from(["none", "simple"]),
        "ignore_labels": st.lists(st.sampled_from(["O", "LABEL_0", "LABEL_1", "x"]), max_size=2),
    },
    "fill-mask": {"top_k": st.integers(1, 10)},
    "question-answering": {
        "top_k": st.integers(1, 3),
        "max_answer_len": st.integers(1, 30),
        "handle_impossible_answer": st.booleans(),
        "align_to_words": st.booleans(),
    },
    "feature-extraction": {
        "pooling": st.sampled_from(["mean", "cls", "none", None]),
        "normalize": st.booleans(),
    },
}


@st.composite
def plausible_body(draw, task: str, mask: str, v2: bool) -> Any:
    """A request of the right shape for the task, with valid parameters and texts that are odd but valid
    Unicode: most of these reach the model, so that the runtime sees them."""
    text = (
        st.builds(lambda a, b: f"{a} {mask} {b}", CLEAN_TEXTS, CLEAN_TEXTS)
        if task == "fill-mask"
        else CLEAN_TEXTS
    )
    count = draw(st.integers(1, 8))
    names = {"question-answering": ["question", "context"], "text-classification": ["text", "text_pair"]}
    wanted = names.get(task, ["text"])[: 2 if task == "question-answering" else draw(st.integers(1, 2))]
    allowed = VALID_PARAMETERS[task]
    keys = draw(st.lists(st.sampled_from(sorted(allowed)), max_size=2, unique=True))
    params = {key: draw(allowed[key]) for key in keys}
    if v2:
        tensors = [
            {
                "name": n,
                "shape": [count],
                "datatype": "BYTES",
                "data": draw(st.lists(text, min_size=count, max_size=count)),
            }
            for n in wanted
        ]
        return {"inputs": tensors, "parameters": params}
    if task == "question-answering":
        item = st.fixed_dictionaries({"question": text, "context": text})
    elif task == "text-classification" and len(wanted) == 2:
        item = st.fixed_dictionaries({"text": text, "text_pair": text})
    else:
        item = text
    inputs = draw(st.one_of(item, st.lists(item, min_size=1, max_size=count)))
    return {"inputs": inputs, "parameters": params}


def _encode(body: Any) -> bytes:
    """JSON bytes (lone surrogates escaped as \\ud800, as any JSON encoder writes them; NaN as Python does)."""
    return json.dumps(body).encode("ascii")


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"{", b"[]", b'{"inputs": ', b"\xff\xfe{\x00}\x00", b"null", b"1e999999", b'"\\ud800"']
    ),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1, 3000)),
)


# --- requests --------------------------------------------------------------------------------------------


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route, from the app's own OpenAPI description."""
    return sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)


@st.composite
def http_call(
    draw, routes: list[tuple[str, str]], model: str, task: str, mask: str
) -> tuple[str, str, bytes | None]:
    """Mostly a documented route with a body for it, sometimes a wrong method, model, version or path."""
    posts = [route for route in routes if route[0] == "POST"]
    others = [route for route in routes if route[0] != "POST"]
    method, template = draw(st.sampled_from(posts if draw(st.integers(0, 9)) < 7 else others))
    if draw(st.integers(0, 19)) == 0:
        method = draw(st.sampled_from(METHODS))
    odd = st.one_of(TEXTS, st.sampled_from(["..", "%2e%2e", "1/../x", "2", model + "x"]))
    model_name = model if draw(st.integers(0, 9)) < 8 else draw(odd)
    version = "1" if draw(st.integers(0, 9)) < 8 else draw(odd)
    path = template.replace("{model_name}", _quote(model_name)).replace("{version}", _quote(version))
    if draw(st.integers(0, 19)) == 0:
        path = "/" + _quote(draw(TEXTS), safe="/")
    if draw(st.integers(0, 19)) == 0:
        path += "?" + _quote(draw(TEXTS), safe="=&")
    if method in ("GET", "HEAD", "OPTIONS", "DELETE") and draw(st.integers(0, 4)) != 0:
        return method, path, None
    kind = draw(st.integers(0, 11))
    if kind >= 7:
        body = _encode(draw(plausible_body(task, mask, v2="infer" in template)))
    elif kind < 3 or (kind < 6 and "infer" in template):
        body = _encode(draw(v2_body()))
    elif kind < 6:
        body = _encode(draw(predict_body()))
    else:
        body = draw(RAW_BODIES)
    return method, path, body


def _quote(text: str, safe: str = "") -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


# --- the property ----------------------------------------------------------------------------------------


def _check(response: httpx.Response, method: str, statuses: collections.Counter) -> None:
    statuses[response.status_code] += 1
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text)
    if response.status_code >= 400 and method != "HEAD":
        error = response.json()["error"]
        assert isinstance(error, str) and error and "\n" not in error and "Traceback" not in error
        assert "0x" not in error or "byte 0x" in error


@pytest.fixture(scope="module", params=sorted(TASKS))
def served(request, export_once):
    task = request.param
    pipeline = load(export_once("bert", task)[TASKS[task]].output)
    with running(pipeline, max_items=8, max_text_chars=500, max_body_bytes=100_000) as (base, server, app):
        yield task, pipeline, base, app


def _valid(task: str, pipeline: Any) -> tuple[str, dict]:
    mask = getattr(pipeline.tokenizer, "mask_token", "[MASK]")
    texts = {
        "question-answering": [
            {"name": "question", "shape": [1], "datatype": "BYTES", "data": ["Where is the fox?"]},
            {"name": "context", "shape": [1], "datatype": "BYTES", "data": ["The fox is in the woods."]},
        ],
        "fill-mask": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [f"the fox is {mask}."]}],
    }.get(task, [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine film"]}])
    return f"/v2/models/{pipeline.name}/infer", {"inputs": texts}


def test_generated_requests_never_get_a_500(served):
    task, pipeline, base, app = served
    routes = _routes(app)
    mask = getattr(pipeline.tokenizer, "mask_token", None) or "[MASK]"
    assert ("POST", "/predict") in routes and ("POST", "/v2/models/{model_name}/infer") in routes
    started, statuses = time.perf_counter(), collections.Counter()

    with httpx.Client(base_url=base, timeout=60) as client:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        )
        @given(call=http_call(routes, pipeline.name, task, mask))
        def fuzz(call: tuple[str, str, bytes | None]) -> None:
            method, path, body = call
            headers = {"content-type": "application/json"} if body is not None else {}
            _check(client.request(method, path, content=body, headers=headers), method, statuses)

        fuzz()
        reached_the_model = app.state.lifecycle.accepted
        # still healthy, and still right
        assert client.get("/v2/health/ready").status_code == 200
        path, body = _valid(task, pipeline)
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics
    sent = sum(statuses.values())
    print(
        f"\n| {task} | {sent} | {reached_the_model} | "
        + " | ".join(str(statuses[s]) for s in (200, 400, 404, 405, 413, 500))
        + f" | {time.perf_counter() - started:.0f} s |"
    )
    assert sent >= min(EXAMPLES, 50)
