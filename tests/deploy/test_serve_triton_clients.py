"""``pruneofa serve`` as Triton's stock Python clients use it, against a real server on loopback:
``tritonclient.http`` (liveness, readiness, model readiness, metadata, the repository index, inference) and
``tritonclient.grpc`` on ``--grpc-port`` (the same, over gRPC, with the REST limits and refusals mapped to
gRPC status codes, and the calls counted in ``/metrics``)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from serving import port_of, running

from pruneofa.deploy.pipeline import load

http = pytest.importorskip(
    "tritonclient.http", reason="tritonclient[http] is not installed (requirements.lock)"
)
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def classifier(export_once):
    return load(export_once("bert", "text-classification")["openvino"].output)


@pytest.fixture(scope="module")
def server(classifier):
    with running(classifier, max_items=8, max_body_bytes=4096, grpc_port=0) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(server):
    base, _, _ = server
    triton = http.InferenceServerClient(f"127.0.0.1:{port_of(base)}")
    yield triton
    triton.close()


def test_the_http_client_finds_the_model_in_the_repository_index(client, classifier):
    assert client.is_server_live() and client.is_server_ready()
    name = classifier.name
    expected = [{"name": name, "version": "1", "state": "READY", "reason": ""}]
    assert client.get_model_repository_index() == expected
    assert client.is_model_ready(name) and client.is_model_ready(name, "1")
    assert not client.is_model_ready(name, "2") and not client.is_model_ready("other")
    metadata = client.get_model_metadata(name)
    assert metadata["name"] == name and [t["name"] for t in metadata["inputs"]] == ["text", "text_pair"]
    with pytest.raises(InferenceServerException, match="does not load or unload models"):
        client.load_model(name)


def test_the_http_client_infers_with_bytes_text(client, classifier):
    text = http.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(["a fine film", "a dull film"], dtype=object), binary_data=False)
    result = client.infer(classifier.name, [text])
    expected = classifier(["a fine film", "a dull film"])
    assert list(result.as_numpy("label").astype(str)) == [r["label"] for r in expected]
    np.testing.assert_allclose(result.as_numpy("score"), [r["score"] for r in expected], rtol=1e-5)


def test_the_repository_index_body_is_optional_and_checked(server, classifier):
    base, _, _ = server
    ready = httpx.post(f"{base}/v2/repository/index", json={"ready": True})
    assert ready.status_code == 200 and [m["name"] for m in ready.json()] == [classifier.name]
    for body, message in ((b"[]", "empty body or"), (b'{"ready": 1}', "true or false"), (b"{", "malformed")):
        refused = httpx.post(f"{base}/v2/repository/index", content=body)
        assert refused.status_code == 400 and message in refused.json()["error"]


def test_binary_inputs_are_refused_with_the_fix(client, classifier):
    text = http.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array(["a fine film"], dtype=object), binary_data=True)
    with pytest.raises(InferenceServerException, match=r"\[400\] binary tensor data is not accepted"):
        client.infer(classifier.name, [text])


@pytest.fixture(scope="module")
def grpc_client(server):
    grpcclient = pytest.importorskip(
        "tritonclient.grpc", reason="grpcio is not installed (requirements.lock)"
    )
    _, _, app = server
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{app.state.service.grpc_port}")
    yield triton
    triton.close()


def _texts(module, texts, name="text"):
    tensor = module.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))
    return tensor


def test_the_grpc_client_sees_health_metadata_and_the_repository_index(grpc_client, classifier):
    name = classifier.name
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert grpc_client.is_model_ready(name) and grpc_client.is_model_ready(name, "1")
    assert grpc_client.get_server_metadata(as_json=True)["name"] == "pruneofa"
    index = grpc_client.get_model_repository_index(as_json=True)
    assert index == {"models": [{"name": name, "version": "1", "state": "READY"}]}  # "" is left out
    assert grpc_client.get_model_repository_index(as_json=True) == index
    metadata = grpc_client.get_model_metadata(name, as_json=True)
    assert metadata["platform"] == "openvino_ir" and metadata["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [
        ("text", "BYTES"),
        ("text_pair", "BYTES"),
    ]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [
        ("label", "BYTES"),
        ("score", "FP32"),
    ]


def test_the_grpc_client_infers_as_rest_does(grpc_client, client, classifier):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    texts = ["a fine film", "a dull film, très lent"]
    result = grpc_client.infer(classifier.name, [_texts(grpcclient, texts)], request_id="r1")
    assert result.get_response().id == "r1"
    rest_text = http.InferInput("text", [2], "BYTES")
    rest_text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=False)
    rest = client.infer(classifier.name, [rest_text])
    assert list(result.as_numpy("label")) == [x.encode() for x in rest.as_numpy("label").astype(str)]
    np.testing.assert_allclose(result.as_numpy("score"), rest.as_numpy("score"), rtol=1e-6)
    top = grpc_client.infer(classifier.name, [_texts(grpcclient, texts[:1])], parameters={"top_k": 2})
    assert top.as_numpy("label").shape[0] >= 1


def test_the_grpc_refusals_are_the_rest_ones_with_grpc_codes(grpc_client, server, classifier):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    def refused(call, code: str, message: str) -> None:
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == f"StatusCode.{code}" and message in caught.value.message()

    name = classifier.name
    refused(lambda: grpc_client.get_model_metadata("other"), "NOT_FOUND", "unknown model 'other'")
    refused(lambda: grpc_client.is_model_ready(name, "2"), "NOT_FOUND", "version '2'")
    ids = grpcclient.InferInput("input_ids", [1, 3], "INT64")
    ids.set_data_from_numpy(np.array([[101, 2000, 102]], dtype=np.int64))
    refused(lambda: grpc_client.infer(name, [ids]), "INVALID_ARGUMENT", "unknown input 'input_ids'")
    refused(
        lambda: grpc_client.infer(name, [_texts(grpcclient, ["x"] * 9)]),
        "RESOURCE_EXHAUSTED",
        "over the limit of 8",
    )
    refused(
        lambda: grpc_client.infer(name, [_texts(grpcclient, ["x" * 5000])]),
        "RESOURCE_EXHAUSTED",
        "larger than max",
    )
    bad = grpcclient.InferInput("text", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"\xff\xfe"], dtype=object))
    refused(lambda: grpc_client.infer(name, [bad]), "INVALID_ARGUMENT", "text[0] is not UTF-8")
    refused(
        lambda: grpc_client.infer(name, [_texts(grpcclient, ["x"])], parameters={"top_q": 1}),
        "INVALID_ARGUMENT",
        "unknown parameter 'top_q'",
    )
    refused(lambda: grpc_client.get_model_config(name), "UNIMPLEMENTED", "")
    base, _, _ = server
    metrics = httpx.get(f"{base}/metrics").text
    assert 'pruneofa_requests_total{endpoint="grpc ModelInfer",status="INVALID_ARGUMENT"}' in metrics
    assert 'pruneofa_requests_total{endpoint="grpc ModelInfer",status="OK"}' in metrics


def test_grpc_port_mistakes_are_one_line_errors_before_the_model_loads(tmp_path):
    import socket

    from pruneofa.core.errors import InputError
    from pruneofa.deploy.serve import serve
    from pruneofa.deploy.serving import serve_config

    folder = tmp_path / "never-loaded"  # the checks come first: nothing is read from it
    with pytest.raises(InputError, match="--grpc-port 8123 is --port too"):
        serve(str(folder), serve_config(name="m", port=8123, grpc_port=8123))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match="pass another --grpc-port"):
            serve(str(folder), serve_config(name="m", port=0, grpc_port=port))


def test_binary_data_output_must_be_a_boolean(server, classifier):
    base, _, _ = server
    body = {
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fine"]}],
        "parameters": {"binary_data_output": "yes"},
    }
    refused = httpx.post(f"{base}/v2/models/{classifier.name}/infer", json=body)
    assert (
        refused.status_code == 400 and "'binary_data_output' must be true or false" in refused.json()["error"]
    )
    body["parameters"] = {"binary_data_output": False}
    answered = httpx.post(f"{base}/v2/models/{classifier.name}/infer", json=body)
    assert answered.status_code == 200 and answered.json()["outputs"][0]["data"] == [
        classifier(["fine"])[0]["label"]
    ]
