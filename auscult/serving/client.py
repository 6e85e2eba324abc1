"""A small HTTP client for the serving contract (what an app does), standard library only."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np


class ServingError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def post(url: str, payload: object, timeout_s: float = 30.0) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ServingError(error.code, error.read().decode(errors="replace")) from None


def predict_file(base_url: str, data: bytes, tags: dict | None = None) -> dict:
    """Send an encoded audio file (any rate, any channels)."""
    message = {"binData": base64.b64encode(data).decode(), "meta": {"tags": tags or {}}}
    return post(f"{base_url}/api/v1.0/predictions", message)


def predict_waveform(base_url: str, wave: np.ndarray, tags: dict | None = None) -> dict:
    """Send a mono float32 waveform at 16 kHz."""
    message = {"data": {"ndarray": np.asarray(wave, dtype=np.float32).tolist()}, "meta": {"tags": tags or {}}}
    return post(f"{base_url}/api/v1.0/predictions", message)


def send_feedback(base_url: str, response: dict, truth: str) -> dict:
    """Tell the server the true class of an answered request."""
    feedback = {"response": {"meta": response["meta"]}, "truth": {"data": {"ndarray": [truth]}}}
    return post(f"{base_url}/api/v1.0/feedback", feedback)
