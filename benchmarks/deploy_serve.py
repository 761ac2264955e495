"""Serving load figures for docs/deploy.md: ``pruneofa serve`` on loopback under concurrent clients.

Starts the server in this process (uvicorn in a thread, as ``pruneofa serve`` runs it), then C clients
send N requests in total (KServe v2 infer with one sentence each, or /predict), and reports: requests,
concurrency, answered (200), refused (503), other errors, p50/p90/p99 latency, requests/s, and the
dynamic batch sizes the server formed (from its Prometheus metrics). A second phase with a small queue
shows refusals instead of unbounded waiting.

Run:  .venv/bin/python benchmarks/deploy_serve.py bench-out/deploy/structured-int8 --requests 600 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from pruneofa.core.runtime import load_parity_samples
from pruneofa.deploy.pipeline import load
from pruneofa.deploy.serving import create_app, serve_config, uvicorn_server


def _start(pipeline, **options):
    config = serve_config(port=0, name=pipeline.name, **options)  # the v2 URLs below use pipeline.name
    app = create_app(pipeline, config)
    server = uvicorn_server(app, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


async def _clients(base: str, name: str, task: str, total: int, clients: int) -> list[tuple[int, float]]:
    sentences = load_parity_samples()["sentences"]
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]

    def body(i: int) -> dict:
        text = sentences[i % len(sentences)]
        tensor = {"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}
        out = {"inputs": [tensor]}
        if task == "feature-extraction":
            out["parameters"] = {"pooling": "mean", "normalize": True}
        return out

    async def one(index: int, count: int) -> list[tuple[int, float]]:
        results = []
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:
            for k in range(count):
                started = time.perf_counter()
                try:
                    response = await client.post(f"/v2/models/{name}/infer", json=body(index * 1000 + k))
                    status = response.status_code
                except httpx.HTTPError:
                    status = -1
                results.append((status, time.perf_counter() - started))
        return results

    parts = await asyncio.gather(*(one(i, n) for i, n in enumerate(per_client)))
    return [r for part in parts for r in part]


def _phase(pipeline, label: str, total: int, clients: int, **options) -> dict:
    server, thread, base = _start(pipeline, **options)
    try:
        started = time.perf_counter()
        results = asyncio.run(_clients(base, pipeline.name, pipeline.task.name, total, clients))
        wall = time.perf_counter() - started
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        server.handle_exit(signal.SIGTERM, None)
        thread.join(60)
    statuses = collections.Counter(s for s, _ in results)
    answered = [t * 1000 for s, t in results if s == 200]
    batches = {
        line.split()[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(("pruneofa_batch_texts_count", "pruneofa_batch_texts_sum"))
    }
    return {
        "phase": label,
        "requests": len(results),
        "clients": clients,
        "answered_200": statuses.get(200, 0),
        "refused_503": statuses.get(503, 0),
        "other_errors": sum(n for s, n in statuses.items() if s not in (200, 503)),
        "p50_ms": round(float(np.percentile(answered, 50)), 1) if answered else None,
        "p90_ms": round(float(np.percentile(answered, 90)), 1) if answered else None,
        "p99_ms": round(float(np.percentile(answered, 99)), 1) if answered else None,
        "requests_per_s": round(statuses.get(200, 0) / wall, 1),
        "mean_batch": round(
            batches.get("pruneofa_batch_texts_sum", 0) / max(batches.get("pruneofa_batch_texts_count", 1), 1),
            2,
        ),
        "wall_s": round(wall, 1),
        "server": options,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench-out/deploy/serve-load.json"))
    args = parser.parse_args()
    pipeline = load(args.folder, batch_size=16)
    pipeline("warm-up sentence")
    rows = [
        _phase(pipeline, "default queue (256)", args.requests, args.clients, max_batch=16, max_delay_ms=5),
        _phase(
            pipeline,
            "small queue (8)",
            args.requests,
            args.clients * 2,
            max_batch=16,
            max_delay_ms=5,
            max_queue=8,
        ),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(
        "| phase | requests | clients | 200 | 503 | other errors | p50 ms | p90 ms | p99 ms | req/s | mean batch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['phase']} | {r['requests']} | {r['clients']} | {r['answered_200']} | {r['refused_503']} | "
            f"{r['other_errors']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['requests_per_s']} | {r['mean_batch']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
