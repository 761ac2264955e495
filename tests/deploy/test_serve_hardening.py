"""``pruneofa serve`` against hostile clients (issue 17): input that crashed the runtime or the parser is a
400 before it gets there; an unexpected error is a generic 500, counted, logged, and the connection still
answers the requests behind it; clients that stall get 408; routing errors have ``{"error"}`` bodies; the
API description is off by default; a shutdown with more accepted work than its limit says so and fails."""

from __future__ import annotations

import asyncio
import json
import logging
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
from serving import Hooked, closed_by_peer, port_of, read_responses, request_bytes, running

import pruneofa.deploy.serve as serve_module
from pruneofa.deploy.pipeline import load


@pytest.fixture(scope="module", params=["openvino", "onnx"])
def any_runtime(request, export_once):
    return load(export_once("bert", "text-classification")[request.param].output)


@pytest.fixture(scope="module")
def classifier(export_once):
    return load(export_once("bert", "text-classification")["openvino"].output)


@pytest.fixture(scope="module")
def server(any_runtime):
    with running(any_runtime, max_text_chars=500, max_body_bytes=2_000_000) as handle:
        yield handle


def _v2(tensors: list[dict]) -> dict:
    return {"inputs": tensors}


def _text(data: list, shape=None, name: str = "text", datatype: str = "BYTES") -> dict:
    return {
        "name": name,
        "shape": [len(data)] if shape is None else shape,
        "datatype": datatype,
        "data": data,
    }


def _nested(levels: int) -> bytes:
    return b'{"inputs": ' + b"[" * levels + b'"x"' + b"]" * levels + b"}"


# Raw bodies: a lone surrogate is valid JSON ("\ud800") but not valid Unicode; httpx would not send it.
SURROGATE_PREDICT = b'{"inputs": "x \\ud800"}'
SURROGATE_V2 = b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x \\ud800"]}]}'
SURROGATE_ID = (
    b'{"id": "\\udfff", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}'
)
SURROGATE_KEY = b'{"inputs": "x", "parameters": {"\\ud800": 1}}'


@pytest.mark.parametrize(
    "path,payload,status,message",
    [
        ("/predict", SURROGATE_PREDICT, 400, "lone surrogate"),
        ("/v2/models/MODEL/infer", SURROGATE_V2, 400, "lone surrogate"),
        ("/v2/models/MODEL/infer", SURROGATE_ID, 400, "lone surrogate"),
        ("/predict", SURROGATE_KEY, 400, "lone surrogate"),
        ("/predict", _nested(1_000), 400, "nested"),
        ("/predict", _nested(100_000), 400, "nested"),
        ("/v2/models/MODEL/infer", _nested(1_000), 400, "nested"),
        ("/v2/models/MODEL/infer", _nested(100_000), 400, "nested"),
        ("/predict", b'{"inputs": ' + b"1" * 5000 + b"}", 400, "malformed JSON"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text(["a"], shape=[True])])).encode(), 400, "shape"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text(["a", "b"], shape=[1, 2])])).encode(), 400, "shape"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text([], shape=[2**64, 0])])).encode(), 400, "non-empty"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text(["a"], shape=[1.0])])).encode(), 400, "shape"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text(["a"]), _text(["b"])])).encode(), 400, "twice"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([_text(["a"], datatype="bytes")])).encode(), 400, "BYTES"),
        ("/v2/models/MODEL/infer", json.dumps({"id": 7, **_v2([_text(["a"])])}).encode(), 400, "'id'"),
        ("/v2/models/MODEL/infer", json.dumps({"extra": 1, **_v2([_text(["a"])])}).encode(), 400, "unknown"),
        ("/v2/models/MODEL/infer", json.dumps(_v2([{**_text(["a"]), "x": 1}])).encode(), 400, "unknown"),
        ("/v2/models/MODEL/infer", b"\xff\xfe{}", 400, "UTF-8"),
    ],
)
def test_hostile_input_is_a_400_before_the_runtime(server, any_runtime, path, payload, status, message):
    base, _, _ = server
    with httpx.Client(base_url=base, timeout=60) as client:
        response = client.post(path.replace("MODEL", any_runtime.name), content=payload)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert message in error and "\n" not in error
        assert client.get("/v2/health/ready").status_code == 200  # and the server is still fine


def test_routing_errors_have_error_bodies_and_the_docs_are_off(server):
    base, _, _ = server
    with httpx.Client(base_url=base) as client:
        missing = client.get("/v2/nothing")
        assert missing.status_code == 404 and "no endpoint" in missing.json()["error"]
        wrong = client.get("/predict")
        assert wrong.status_code == 405 and "POST" in wrong.json()["error"] and "detail" not in wrong.json()
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert client.get(path).status_code == 404
        metrics = client.get("/metrics").text
    assert 'status="404"' in metrics and 'status="405"' in metrics


def test_the_docs_can_be_asked_for(classifier):
    with running(classifier, docs=True) as (base, _, _):
        assert httpx.get(f"{base}/openapi.json").json()["paths"]
        assert httpx.get(f"{base}/docs").status_code == 200


def _explode_on(word: str):
    def before(items: list) -> None:
        if word in items:
            raise RuntimeError(f"runtime exploded on {word} at <pybind11 object at 0x7f00deadbeef>")

    return before


def test_an_unexpected_error_is_a_generic_500_and_later_requests_are_answered(classifier, caplog):
    pipeline = Hooked(classifier, _explode_on("explode"))
    with (
        caplog.at_level(logging.ERROR, logger="pruneofa.serve"),
        running(pipeline, max_delay_ms=0) as (base, _, _),
    ):
        pipelined = request_bytes("POST", "/predict", b'{"inputs": "explode"}')
        pipelined += request_bytes("POST", "/predict", b'{"inputs": "a fine film"}')
        pipelined += request_bytes("GET", "/v2/health/live")
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
            sock.sendall(pipelined)
            responses = read_responses(sock, 3)
        assert [status for status, _, _ in responses] == [500, 200, 200]
        status, headers, body = responses[0]
        assert json.loads(body) == {"error": serve_module.INTERNAL_ERROR}
        assert b"0x7f" not in body and b"RuntimeError" not in body
        assert json.loads(responses[1][2])[0]["label"]
        # keep-alive too: a 500 on one request of a connection does not cost the next one
        with httpx.Client(base_url=base, timeout=60) as client:
            assert client.post("/predict", json={"inputs": "explode"}).status_code == 500
            assert client.post("/predict", json={"inputs": "fine"}).status_code == 200
            metrics = client.get("/metrics").text
    assert 'pruneofa_requests_total{endpoint="/predict",status="500"} 2.0' in metrics
    assert "Traceback" in caplog.text and "runtime exploded" in caplog.text


class FakePanic(BaseException):
    """What a Rust panic in a tokenizer raises (pyo3's PanicException derives from BaseException)."""


def test_a_panic_in_the_model_call_is_a_500_and_the_worker_lives_on(classifier):
    def before(items: list) -> None:
        if "panic" in items:
            raise FakePanic("`stride` must be strictly less than `max_len`")

    with running(Hooked(classifier, before), max_delay_ms=0) as (base, _, _):
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.post("/predict", json={"inputs": "panic"})
            assert response.status_code == 500 and response.json() == {"error": serve_module.INTERNAL_ERROR}
            assert client.post("/predict", json={"inputs": "a fine film"}).status_code == 200


def test_a_long_question_on_a_short_model_is_answered(export_once):
    """The tiny model's window is 130 tokens: a long question with a long context used to leave the
    tokenizer less context room than the window overlap, and its panic killed the batching worker (every
    later request hung)."""
    pipeline = load(export_once("bert", "question-answering")["onnx"].output)
    with running(pipeline) as (base, _, _):
        with httpx.Client(base_url=base, timeout=30) as client:
            for question, context in (("word " * 99, "word " * 99), ("where " * 40, "the fox " * 60)):
                body = {"inputs": {"question": question, "context": context}}
                response = client.post("/predict", json=body)
                assert response.status_code == 200, response.text
                assert isinstance(response.json()["answer"], str)


def test_stalled_headers_get_408_and_the_connection_closes(classifier):
    """Headers trickled a byte at a time: each byte resets uvicorn's keep-alive timer, so without a
    deadline of its own the connection would stay open (and silent) for as long as the client likes."""
    with running(classifier, header_timeout_s=2) as (base, _, _):
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(3):
                time.sleep(0.3)
                sock.sendall(b"X")
            sock.settimeout(30)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in answer.lower()
        assert "not received within 2 s" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_oversized_or_broken_headers_get_an_error_body(classifier):
    with running(classifier, max_header_bytes=4096) as (base, _, _):
        for request, status, words in (
            (
                request_bytes("GET", "/v2/health/live", headers={"X-Big": "x" * 8000}),
                431,
                "over the limit of 4096",
            ),
            (b"NOT HTTP AT ALL\r\n\r\n", 400, "invalid HTTP request"),
        ):
            with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
                sock.sendall(request)
                ((got, headers, body),) = read_responses(sock, 1)
            assert got == status and headers["connection"] == "close"
            assert words in json.loads(body)["error"]


def test_a_stalled_body_gets_408_and_the_connection_closes(classifier):
    with running(classifier, body_timeout_s=1) as (base, _, _):
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
            head = request_bytes("POST", "/predict", b"x" * 100)[:-100]  # headers say 100 bytes
            sock.sendall(head + b'{"inputs": ')
            ((status, headers, body),) = read_responses(sock, 1)
            assert status == 408 and headers["connection"] == "close"
            assert "did not arrive" in json.loads(body)["error"]
            assert closed_by_peer(sock)


def test_a_body_over_the_limit_closes_the_connection(classifier):
    with running(classifier, max_body_bytes=1000) as (base, _, _):
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
            sock.sendall(request_bytes("POST", "/predict", b"x" * 10_000)[:-9_000])
            ((status, headers, _),) = read_responses(sock, 1)
            assert status == 413 and headers["connection"] == "close"
            assert closed_by_peer(sock)


# --- shutdown ------------------------------------------------------------------------------------------


def _slow(seconds: float):
    def before(items: list) -> None:
        time.sleep(seconds)

    return before


def test_shutdown_with_more_work_than_its_limit_answers_503_and_reports_it(classifier, capsys):
    """12 accepted requests of 0.3 s each (one per batch) and a limit of 1 s: the rest is answered 503 at
    the limit, every request gets an answer, and the report (and exit code) says how many were dropped."""
    pipeline = Hooked(classifier, _slow(0.3))
    with running(pipeline, max_batch=1, max_delay_ms=0, graceful_timeout_s=1) as (base, server, app):

        async def scenario():
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                pending = [
                    asyncio.create_task(client.post("/predict", json={"inputs": f"text {i}"}))
                    for i in range(12)
                ]
                deadline = time.time() + 60
                while app.state.lifecycle.accepted < 12:
                    assert time.time() < deadline
                    await asyncio.sleep(0.01)
                server.handle_exit(signal.SIGTERM, None)
                return await asyncio.gather(*pending)

        responses = asyncio.run(scenario())
        lifecycle = app.state.lifecycle
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and statuses.count(503) >= 1
    assert lifecycle.accepted == 12 and lifecycle.dropped == statuses.count(503)
    assert all("graceful-timeout" in r.json()["error"] for r in responses if r.status_code == 503)
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 503)
    config = app.state.batcher.config
    assert serve_module.shutdown_report(lifecycle, config) == 1
    err = capsys.readouterr().err
    assert f"{statuses.count(503)} of 12 accepted requests were not answered" in err


def test_shutdown_within_the_limit_answers_everything(classifier, capsys):
    pipeline = Hooked(classifier, _slow(0.05))
    with running(pipeline, max_batch=1, max_delay_ms=0) as (base, server, app):

        async def scenario():
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                pending = [
                    asyncio.create_task(client.post("/predict", json={"inputs": "t"})) for _ in range(8)
                ]
                while app.state.lifecycle.accepted < 8:
                    await asyncio.sleep(0.01)
                server.handle_exit(signal.SIGTERM, None)
                return await asyncio.gather(*pending)

        responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 8
    assert serve_module.shutdown_report(app.state.lifecycle, app.state.batcher.config) == 0
    assert "every accepted request was answered (8)" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_exits_1_when_the_limit_drops_accepted_work(export_once):
    """``--graceful-timeout 0`` with a request waiting in a 3 s batching window: SIGTERM answers it 503,
    says so, and the command exits 1 (it used to print "every accepted request was answered", exit 0)."""
    folder = export_once("bert", "text-classification")["onnx"].output
    port = _free_port()
    command = [sys.executable, "-m", "pruneofa.cli", "serve", str(folder), "--port", str(port)]
    command += ["--max-delay-ms", "3000", "--graceful-timeout", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "server did not become ready"
            time.sleep(0.3)
        results: list = []
        sender = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{base}/predict", json={"inputs": "a film"}, timeout=60)
            )
        )
        sender.start()
        time.sleep(1.0)  # the request now waits in the 3 s batching window
        process.send_signal(signal.SIGTERM)
        sender.join(60)
        assert process.wait(60) == 1
        assert results[0].status_code == 503
        err = process.stderr.read()
        assert "1 of 1 accepted requests were not answered within --graceful-timeout 0 s" in err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serving_a_folder_that_needs_its_own_code_is_refused(tmp_path, capsys):
    from pruneofa.cli import main

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mine", "auto_map": {"AutoConfig": "m.C"}}))
    (folder / "m.py").write_text("import pathlib; pathlib.Path(__file__).with_name('RAN').write_text('x')\n")
    assert main(["serve", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "unsupported model" in err and "never runs code" in err and len(err.strip().splitlines()) == 1
    assert not (folder / "RAN").exists()


def _protocol_answers(base: str, status: int) -> float:
    text = httpx.get(f"{base}/metrics", timeout=60).text
    for line in text.splitlines():
        if line.startswith("pruneofa_requests_total{") and 'endpoint="protocol"' in line:
            if f'status="{status}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(classifier):
    """RFC 9112 §6.3: a request framed two ways may be a smuggling attempt; the bytes after it must not be
    answered as a request of their own."""
    with running(classifier) as (base, _, _):
        body = b'{"inputs": "good"}'
        smuggled = request_bytes("GET", "/v2/health/live")
        head = request_bytes("POST", "/predict", body, headers={"Transfer-Encoding": "chunked"})[: -len(body)]
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
            sock.sendall(head + chunked + smuggled)
            answers = read_responses(sock, 2)
            assert closed_by_peer(sock)
        assert len(answers) == 1, answers
        ((status, headers, reply),) = answers
        assert status == 400 and headers["connection"] == "close"
        assert "Content-Length and Transfer-Encoding" in json.loads(reply)["error"]
        assert _protocol_answers(base, 400) == 1


def test_protocol_answers_have_a_reason_phrase_and_are_counted(classifier):
    with running(classifier, header_timeout_s=1) as (base, _, _):
        for request, line in (
            (b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
            (b"GET /", None),
        ):
            with socket.create_connection(("127.0.0.1", port_of(base)), timeout=60) as sock:
                sock.sendall(request)
                sock.settimeout(30)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(line or b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert _protocol_answers(base, 400) == 1
        assert _protocol_answers(base, 408) == 1
