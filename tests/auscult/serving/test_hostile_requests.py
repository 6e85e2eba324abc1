"""A hostile-request corpus against the real server over HTTP on 127.0.0.1: every client error is a 4xx with a
message, nothing a client sends addresses a store key, feedback cannot be forged, and slow or idle clients do
not stop anyone else. Each case is generated here and states its expected outcome."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest
import soundfile as sf

from auscult import layout
from auscult.serving import client, server, telemetry
from auscult.serving.runtime import request_signature
from auscult.store import FileStore
from tests.auscult.serving.conftest import body, call, promote, wait_for, waveform_request

PREDICT = "/api/v1.0/predictions"
FEEDBACK = "/api/v1.0/feedback"


@pytest.fixture(scope="module")
def served(onnx_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    store = FileStore(folder / "store")
    promote(store, onnx_model)
    with server.start(store.root, folder / "server.log", workers=2) as running:
        yield running, store


def float_wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def lying_flac() -> bytes:
    """A FLAC whose STREAMINFO claims 2^36 - 1 frames (about 50 days at 16 kHz)."""
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * np.sin(np.arange(16000) / 5.0), 16000, format="FLAC")
    data = bytearray(buffer.getvalue())
    field = int.from_bytes(data[18:26], "big") | (2**36 - 1)  # the low 36 bits are the total sample count
    data[18:26] = field.to_bytes(8, "big")
    return bytes(data)


def with_inf() -> bytes:
    samples = 0.1 * np.sin(np.arange(16000) / 5.0)
    samples[100] = np.inf
    return float_wav(samples)


def deep_json(depth: int = 100_000) -> bytes:
    return b'{"data": {"ndarray": ' + b"[" * depth + b"]" * depth + b"}}"


def file_request(data: bytes, tags: dict | None = None) -> bytes:
    return body({"binData": base64.b64encode(data).decode(), "meta": {"tags": tags or {}}})


def feedback(tags: dict, truth: str = "positive") -> bytes:
    return body({"response": {"meta": {"tags": tags}}, "truth": {"data": {"ndarray": [truth]}}})


CASES = [
    # (name, method, path, body, headers, expected status, words in the message)
    ("unknown path", "GET", "/nope", None, {}, 404, "no such endpoint"),
    ("unknown path, POST", "POST", "/api/v9/predictions", b"{}", {}, 404, "no such endpoint"),
    ("seldon router path", "POST", "/route", b"{}", {}, 404, "no such endpoint"),
    ("wrong method", "GET", PREDICT, None, {}, 405, "takes POST"),
    ("DELETE", "DELETE", PREDICT, None, {}, 405, "takes POST"),
    ("not JSON", "POST", PREDICT, b"not json", {}, 400, "JSON"),
    ("not UTF-8", "POST", PREDICT, b'{"binData": "\xff\xfe"}', {}, 400, ""),
    ("JSON nested 100k deep", "POST", PREDICT, deep_json(), {}, 400, "nested too deeply"),
    (
        "form field json= that is not JSON",
        "POST",
        PREDICT,
        b"json=%7Bbroken",
        {"Content-Type": "application/x-www-form-urlencoded"},
        400,
        "not valid JSON",
    ),
    (
        "multipart garbage",
        "POST",
        PREDICT,
        b"--x\r\n\r\n",
        {"Content-Type": "multipart/form-data; boundary=x"},
        400,
        "",
    ),
    ("JSON array", "POST", PREDICT, b"[1, 2]", {}, 400, "JSON object"),
    ("NaN samples", "POST", PREDICT, b'{"data": {"ndarray": [' + b"NaN," * 3999 + b"NaN]}}", {}, 400, "NaN"),
    ("meta not an object", "POST", PREDICT, body({**waveform_request(), "meta": "x"}), {}, 400, "'meta'"),
    ("age=inf tag", "POST", PREDICT, body(waveform_request(tags={"age": "inf"})), {}, 400, "age"),
    ("unknown tag", "POST", PREDICT, body(waveform_request(tags={"model_version": "x"})), {}, 400, "unknown tag"),
    ("5000-char tag", "POST", PREDICT, body(waveform_request(tags={"request_id": "a" * 5000})), {}, 400, "client_"),
    ("float WAV with +Inf", "POST", PREDICT, file_request(with_inf()), {}, 400, "binData"),
    ("FLAC claiming 2^36 frames", "POST", PREDICT, file_request(lying_flac()), {}, 400, "binData"),
    ("random bytes as a file", "POST", PREDICT, file_request(bytes(range(256)) * 40), {}, 400, "binData"),
    ("feedback without tags", "POST", FEEDBACK, feedback({}), {}, 400, "request_id"),
    (
        "feedback naming a store path",
        "POST",
        FEEDBACK,
        feedback({"request_id": "../../models/auscult-screening/production/999999", "request_signature": "x"}),
        {},
        400,
        "request_id",
    ),
    ("feedback with a 5000-char id", "POST", FEEDBACK, feedback({"request_id": "a" * 5000}), {}, 400, "request_id"),
    (
        "forged feedback",
        "POST",
        FEEDBACK,
        feedback({"request_id": "0" * 32, "request_signature": request_signature(b"guess", "0" * 32)}),
        {},
        403,
        "answered",
    ),
    ("feedback that is not JSON", "POST", FEEDBACK, b"{", {}, 400, ""),
    ("feedback that is a number", "POST", FEEDBACK, b"5", {}, 400, "JSON object"),
    ("feedback that is true", "POST", FEEDBACK, b"true", {}, 400, "JSON object"),
    ("a sample of 10^309", "POST", PREDICT, b'{"data": {"ndarray": [1' + b"0" * 309 + b", 0.1]}}", {}, 400, "numbers"),
    ("samples as strings", "POST", PREDICT, body({"data": {"ndarray": ["0.1"] * 4000}}), {}, 400, "numbers only"),
    ("samples as booleans", "POST", PREDICT, body({"data": {"ndarray": [True] * 4000}}), {}, 400, "numbers only"),
    ("int16 samples unscaled", "POST", PREDICT, body(waveform_request(scale=3000)), {}, 400, "within [-1, 1]"),
    ("age of 10^309", "POST", PREDICT, body(waveform_request(tags={"age": 10**309})), {}, 400, "age"),
    (
        "multipart part that is not UTF-8",
        "POST",
        PREDICT,
        b'--x\r\nContent-Disposition: form-data; name="other"; filename="a.bin"\r\n\r\n\xff\xfe\r\n--x--\r\n',
        {"Content-Type": "multipart/form-data; boundary=x"},
        400,
        "UTF-8",
    ),
]


@pytest.mark.parametrize("name, method, path, payload, headers, status, words", CASES, ids=[c[0] for c in CASES])
def test_client_errors_are_4xx_with_a_message(served, name, method, path, payload, headers, status, words):
    running, store = served
    before = set(store.list())
    got, _, text = call(running.url, method, path, payload, headers)
    assert got == status, text
    if words:
        assert words in json.loads(text)["status"]["info"], text
    assert set(store.list()) == before  # nothing refused left a trace in the store


def test_a_body_over_the_limit_is_refused_unread(served):
    running, _ = served
    target = urllib.parse.urlsplit(running.url)
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {2**31}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_a_body_shorter_than_its_length_gets_408_not_a_hang(served):
    running, _ = served
    target = urllib.parse.urlsplit(running.url)
    with socket.create_connection((target.hostname, target.port), timeout=60) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in answer
        assert sock.recv(4096) == b""  # and the connection is closed


def test_no_origin_is_allowed_unless_configured(served):
    running, _ = served
    _, headers, _ = call(running.url, "GET", "/api/v1.0/health/status", headers={"Origin": "http://evil.example"})
    assert not any(name.lower().startswith("access-control-") for name in headers)


def test_the_server_names_requests_and_keeps_the_clients_id_as_a_tag(served):
    running, store = served
    answer = client.predict_waveform(running.url, waveform_request()["data"]["ndarray"], {"request_id": "../../x"})
    request_id = answer["meta"]["tags"]["request_id"]
    assert len(request_id) == 32 and request_id != "../../x"
    assert client.send_feedback(running.url, answer, "negative") == {"strData": "recorded"}
    tampered = {**answer, "meta": {"tags": {**answer["meta"]["tags"], "request_id": "f" * 32}}}
    with pytest.raises(client.ServingError, match="HTTP 403"):
        client.send_feedback(running.url, tampered, "positive")
    assert wait_for(lambda: telemetry.feedback_keys(store, request_id))
    assert not telemetry.feedback_keys(store, "f" * 32)
    (key,) = [k for k in store.list(layout.TELEMETRY_RECORDS) if request_id in k]
    assert store.get_json(key)["tags"] == {"client_request_id": "../../x"}


def test_participant_tags_are_stored_as_pseudonyms(served):
    from auscult.pseudonym import PSEUDONYM_KEY_ENV, telemetry_participant

    running, store = served
    answer = client.predict_waveform(running.url, waveform_request(3)["data"]["ndarray"], {"participant": "Alice 7"})
    request_id = answer["meta"]["tags"]["request_id"]
    assert wait_for(lambda: any(request_id in k for k in store.list(layout.TELEMETRY_RECORDS)))
    (key,) = [k for k in store.list(layout.TELEMETRY_RECORDS) if request_id in k]
    stored = store.get_json(key)["tags"]["participant"]
    assert stored == telemetry_participant("Alice 7", os.environ[PSEUDONYM_KEY_ENV].encode())
    assert "Alice" not in store.get(key).decode()


def test_idle_and_slow_clients_do_not_stop_normal_requests(served):
    """Clients that open a request and stop sending, and one that trickles its body, hold sockets, not workers."""
    running, _ = served
    target = urllib.parse.urlsplit(running.url)
    held = []
    for _ in range(4):  # more than the workers
        sock = socket.create_connection((target.hostname, target.port), timeout=60)
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{".encode())
        held.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        with socket.create_connection((target.hostname, target.port), timeout=60) as sock:
            sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode())
            while not stop.wait(0.5):
                try:
                    sock.sendall(b" ")
                except OSError:
                    return

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        for seed in range(6):
            status, _, text = call(running.url, "POST", PREDICT, body(waveform_request(seed)), timeout=20)
            assert status == 200, text
    finally:
        stop.set()
        for sock in held:
            sock.close()
        trickler.join(5)


def test_a_client_that_trickles_its_request_is_cut_off(served):
    """Bytes at 2 per second keep a connection from looking idle; the server still closes it after its grace."""
    running, _ = served
    target = urllib.parse.urlsplit(running.url)
    request = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b" " * 1000
    closed_after, answer = None, b""
    with socket.create_connection((target.hostname, target.port), timeout=5) as sock:
        started = time.monotonic()
        for position in range(len(request)):
            try:
                sock.sendall(request[position : position + 1])
                sock.settimeout(0.5)
                answer = sock.recv(4096)
                closed_after = time.monotonic() - started
                break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
            if time.monotonic() - started > 60:
                break
    assert closed_after is not None and closed_after < 30
    assert answer.startswith(b"HTTP/1.1 408") and b"too slowly" in answer
