"""The KServe runtime (``python -m pruneofa.deploy.kserve_runtime``): ``kserve.ModelServer`` serving an
exported folder, called over REST v2 with ``tritonclient.http``, over gRPC with ``tritonclient.grpc``, and over
REST v1; answers equal the pipeline's, refusals are the codec's.

The server runs in a child process, the container's own command: kserve's generated protobuf messages
and ``tritonclient.grpc``'s both define ``inference.*`` and cannot be loaded into one process
(kserve/kserve#3099), so this process never imports kserve. Skipped where kserve is not installed
(``pip install 'pruneofa[kserve]'``; requirements.lock leaves it out, see docs/deploy.md)."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from pruneofa.deploy.pipeline import load

if importlib.util.find_spec("kserve") is None:
    pytest.skip(
        "kserve is not installed (pip install 'pruneofa[kserve]'; not in requirements.lock: kserve 0.21 caps "
        "protobuf<7, pandas<3)",
        allow_module_level=True,
    )
http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient.grpc needs grpcio")
from tritonclient.utils import InferenceServerException  # noqa: E402

NAME = "tiny-sst"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def folder(export_once):
    """A 90 % sparse export, so the runtime has layers for the sparse kernels."""
    return export_once("bert", "text-classification", "unstructured90")["openvino"].output


@pytest.fixture(scope="module")
def classifier(folder):
    return load(folder, sparse_kernels="on")


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory):
    """The runtime on free ports, until SIGTERM: (REST base URL, gRPC target, its log file)."""
    http_port, grpc_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("kserve") / "server.log"
    command = [
        sys.executable, "-m", "pruneofa.deploy.kserve_runtime", "--model_dir", str(folder), "--model_name", NAME,
        "--http_port", str(http_port), "--grpc_port", str(grpc_port), "--max-items", "8",
        "--sparse-kernels", "on", "--configure_logging", "false",
    ]  # fmt: skip
    with log.open("wb") as out:
        # cwd: away from the repository root, whose pruneofa/ folder would shadow an installed wheel
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=log.parent
        )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.time() + 180
    while True:
        assert process.poll() is None, f"the runtime exited {process.returncode}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"the runtime did not get ready:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{base}/v2/models/{NAME}/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    try:
        yield base, f"127.0.0.1:{grpc_port}", log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


TEXTS = ["a fine film", "a dull film"]
# kserve's REST server reads a body without this header as binary tensor data, and tritonclient.http sends
# its JSON requests without it: a client sets it (a binary request carries its own header).
JSON = {"Content-Type": "application/json"}


def _expected(classifier):
    results = classifier(TEXTS)
    return [r["label"] for r in results], [r["score"] for r in results]


def test_rest_v2_metadata_with_the_http_client(server, classifier):
    base, _, _ = server
    client = http.InferenceServerClient(base.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert [t["name"] for t in metadata["inputs"]] == ["text", "text_pair"]
    assert [t["name"] for t in metadata["outputs"]] == [t.name for t in classifier.task.v2_outputs]
    client.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_v2_infer_with_the_http_client(server, classifier, binary):
    base, _, _ = server
    client = http.InferenceServerClient(base.removeprefix("http://"))
    text = http.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
    result = client.infer(NAME, [text], headers=None if binary else JSON)
    labels, scores = _expected(classifier)
    assert list(result.as_numpy("label").astype(str)) == labels
    np.testing.assert_allclose(result.as_numpy("score"), scores, rtol=1e-5)
    client.close()


def test_grpc_with_the_grpc_client(server, classifier):
    _, target, _ = server
    client = grpcclient.InferenceServerClient(target)
    assert client.is_server_live() and client.is_model_ready(NAME)
    text = grpcclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(TEXTS, dtype=object))
    result = client.infer(NAME, [text])
    labels, scores = _expected(classifier)
    assert [v.decode() for v in result.as_numpy("label")] == labels
    np.testing.assert_allclose(result.as_numpy("score"), scores, rtol=1e-5)
    client.close()


def test_refusals_are_the_codecs(server):
    base, target, _ = server
    rest = http.InferenceServerClient(base.removeprefix("http://"))
    unknown = http.InferInput("sentence", [1], "BYTES")
    unknown.set_data_from_numpy(np.array(["x"], dtype=object), binary_data=False)
    with pytest.raises(InferenceServerException, match="unknown input 'sentence'"):
        rest.infer(NAME, [unknown], headers=JSON)
    too_many = grpcclient.InferInput("text", [9], "BYTES")
    too_many.set_data_from_numpy(np.array(["x"] * 9, dtype=object))
    with pytest.raises(InferenceServerException, match="over the limit of 8") as refused:
        grpcclient.InferenceServerClient(target).infer(NAME, [too_many])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    bad = httpx.post(f"{base}/v1/models/{NAME}:predict", json={"instances": ["x"], "parameters": {"nope": 1}})
    assert bad.status_code == 400 and "unknown parameter 'nope'" in bad.json()["error"]


def test_rest_v1_answers_the_pipelines_results(server, classifier):
    base, _, _ = server
    answer = httpx.post(f"{base}/v1/models/{NAME}:predict", json={"instances": TEXTS}, timeout=60)
    assert answer.status_code == 200, answer.text
    labels, scores = _expected(classifier)
    predictions = answer.json()["predictions"]
    assert [p["label"] for p in predictions] == labels
    np.testing.assert_allclose([p["score"] for p in predictions], scores, rtol=1e-5)


def test_the_runtime_opens_the_folder_with_the_sparse_kernels(server, classifier):
    """The runtime's start-up line reports what the kernels did, the same as an in-process load."""
    from pruneofa import kernels

    _, _, log = server
    assert classifier.kernels and classifier.kernels in log.read_text()
    if kernels.available():
        assert classifier.sparse_layers


def test_a_folder_it_cannot_serve_is_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "not-exported"
    empty.mkdir()
    command = [sys.executable, "-m", "pruneofa.deploy.kserve_runtime", "--model_dir", str(empty)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "pruneofa export" in done.stderr
