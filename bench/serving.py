"""Serving: HTTP load on 127.0.0.1 against the real Seldon microservice, against in-process ONNX Runtime.

Request loops are bounded in count and in time, and stop by themselves.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from auscult import audio
from auscult.model import ScreeningNet, export_onnx
from auscult.pseudonym import PSEUDONYM_KEY_ENV
from auscult.registry import Registry
from auscult.serving import contract, server
from auscult.serving.runtime import Predictor
from auscult.store import FileStore
from bench.common import best_rate, percentiles

CLIP_S = 5.0
IDLE_CLIENTS = 2


@contextlib.contextmanager
def held_open(url: str, count: int) -> Iterator[None]:
    """``count`` connections that announce a 100 kB request body, send one byte of it, and wait."""
    target = urllib.parse.urlsplit(url)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((target.hostname, target.port), timeout=30)
            sock.sendall(f"POST {target.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{".encode())
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def payload() -> dict:
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_S * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    wave = (0.1 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)
    return {"binData": base64.b64encode(audio.encode_wav(wave)).decode()}


def load(url: str, body: bytes, concurrency: int, requests: int, limit_s: float) -> dict:
    """``requests`` POSTs spread over ``concurrency`` threads, stopping early at ``limit_s``: each request's
    latency, the throughput and the failures.

    Each thread reuses its HTTP/1.1 connection as a client library would, wherever the server keeps it open
    (the server keeps it open between requests).
    """
    target = urllib.parse.urlsplit(url)
    samples: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + limit_s
    per_thread = max(1, requests // concurrency)
    headers = {"Content-Type": "application/json"}

    def worker() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        for _ in range(per_thread):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()  # the next request reconnects
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    samples.append(elapsed)
                else:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"samples_ms": samples, "requests_per_s": len(samples) / seconds, "failures": failures[0]}


def run(
    concurrencies: tuple[int, ...] = (1, 8, 32),
    requests: int = 400,
    limit_s: float = 30.0,
    workers: int = 2,
    threads: int = 4,
    rounds: int = 2,
) -> dict:
    """The server as `auscult serve` starts it on 2 cores: two worker processes (ONNX Runtime on one thread each),
    four request threads each, so that one request's fsync or I/O overlaps another's compute."""
    message = payload()
    body = json.dumps(message).encode()
    for key in (contract.ENV_FEEDBACK_KEY, PSEUDONYM_KEY_ENV):  # a workspace's key files, or Secrets, elsewhere
        os.environ.setdefault(key, secrets.token_hex(16))
    with tempfile.TemporaryDirectory(prefix="auscult-bench-", dir="/tmp") as folder:
        onnx_path = Path(folder) / "model.onnx"
        export_onnx(ScreeningNet().eval(), onnx_path)
        store = FileStore(Path(folder) / "store")
        registry = Registry(store)
        registry.promote(registry.register(onnx_path.read_bytes(), {}, {}), "bench")
        predictor = Predictor(onnx_path.read_bytes(), "bench")

        def in_process_rate() -> float:
            return best_rate(lambda: sum(1 for _ in range(100) if predictor.answer(dict(message))), 5)

        # Both sides are measured more than once and the best kept: on a shared machine a noisy neighbour
        # can halve one measurement. The in-process baseline is taken before and after the server runs.
        in_process = in_process_rate()
        figures: dict = {"clip_s": CLIP_S, "server_workers": workers, "server_threads": threads, "rounds": rounds}
        with server.start(store.root, Path(folder) / "server.log", workers=workers, threads=threads) as running:
            url = f"{running.url}/api/v1.0/predictions"
            load(url, body, 1, 10, limit_s)  # warm-up
            for concurrency in concurrencies:
                loads = [load(url, body, concurrency, requests, limit_s) for _ in range(rounds)]
                # Throughput: the best round, as for the in-process baseline. Latency: every request of every
                # round, so a percentile is never picked from the luckier round.
                samples = [ms for result in loads for ms in result["samples_ms"]]
                figures[f"c{concurrency}"] = {
                    **percentiles(samples or [float("nan")]),
                    "requests_per_s": max(result["requests_per_s"] for result in loads),
                    "failures": sum(result["failures"] for result in loads),
                }
            # The same single-client load while clients that never finish their requests hold connections open:
            # the delay they cause (seldon-core-microservice's synchronous workers stalled until its 5000 s timeout).
            with held_open(url, IDLE_CLIENTS):
                idle = load(url, body, 1, requests // 4, limit_s)
            figures["c1_with_idle_clients"] = {
                **percentiles(idle["samples_ms"] or [float("nan")]),
                "idle_clients": IDLE_CLIENTS,
                "failures": idle["failures"],
            }
        in_process = max(in_process, in_process_rate())
        figures["in_process_requests_per_s"] = in_process
    if 8 in concurrencies:
        figures["ratio_served_c8_over_in_process"] = figures["c8"]["requests_per_s"] / in_process
    if 1 in concurrencies:
        figures["ratio_served_c1_p50_over_in_process"] = (1000 / in_process) / figures["c1"]["p50_ms"]
    return figures
