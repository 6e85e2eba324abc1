"""What the serving tests share: an exported model, a store holding it in production, and requests."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest

from auscult.registry import Registry
from auscult.store import ObjectStore


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> bytes:
    """An untrained network, exported as training exports it: the server's behaviour does not need a good model."""
    from auscult.model import ScreeningNet, export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(ScreeningNet().eval(), path)
    return path.read_bytes()


def promote(store: ObjectStore, onnx: bytes) -> str:
    registry = Registry(store)
    version = registry.register(onnx, {}, {})
    registry.promote(version, "test")
    return version


def waveform_request(seed: int = 0, tags: dict | None = None, scale: float = 0.2) -> dict:
    wave = np.clip(scale * np.random.default_rng(seed).standard_normal(16000), -5 * scale, 5 * scale)
    return {"data": {"ndarray": wave.astype(np.float32).tolist()}, "meta": {"tags": tags or {}}}


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout=30):
    """One HTTP exchange: (status, headers, body text)."""
    target = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        connection.close()


def wait_for(condition, timeout_s: float = 60.0, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return False


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that can be cut and restored: an object store that goes away and comes back."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.silent = False  # accept connections and never answer, as a store whose disk hangs
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            if self.silent:
                self.open.append(client)
                continue
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        for connection in self.open:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open.clear()

    def restore(self) -> None:
        self.silent = False
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def body(message: object) -> bytes:
    return json.dumps(message).encode()
