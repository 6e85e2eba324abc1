"""The serving runtime: ONNX Runtime over the exported model, and the request/response contract.

Requests follow Seldon's JSON message format:

* ``{"data": {"ndarray": [...]}}``: one mono float32 waveform at 16 kHz (a flat list, or a list holding one);
* ``{"binData": "<base64>"}``: an encoded audio file (wav, flac, ogg, mp3) at any rate and channel count;
* optional ``"meta": {"tags": {...}}``: participant, sound_type, device, ... carried into telemetry.

The response holds the class probabilities under ``data``, and the model version and request id under
``meta.tags``. Anything malformed raises :class:`BadRequest`, which the server turns into a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from auscult import audio
from auscult.serving import contract
from auscult.task import CLASSES

MAX_TAGS = 32
# An encoded file of the longest recording accepted, with room to spare: 48 kHz stereo float WAV, in base64.
MAX_FILE_CHARS = int(audio.MAX_DURATION_S * 48_000 * 2 * 4 * 4 / 3) + 4096
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class BadRequest(ValueError):
    """The request cannot be answered as sent; the message says why."""


@dataclass(frozen=True)
class Answer:
    request_id: str
    probabilities: list[float]
    wave: np.ndarray  # the prepared 16 kHz waveform the model saw
    stats: dict[str, float]
    tags: dict


def providers() -> list[str]:
    """ONNX Runtime's CUDA provider where a GPU build and a GPU are present, the CPU otherwise."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class Predictor:
    def __init__(self, onnx: bytes, version: str, threads: int | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get(contract.ENV_ORT_THREADS, "0"))
        self.session = ort.InferenceSession(onnx, sess_options=options, providers=providers())
        self.version = version

    def windows_scores(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of windows (n, samples)."""
        return self.session.run(["probabilities"], {"waveform": np.ascontiguousarray(windows, dtype=np.float32)})[0]

    def probabilities(self, wave: np.ndarray) -> np.ndarray:
        """Class probabilities of a prepared 16 kHz waveform: the mean over its model windows."""
        return self.windows_scores(audio.windows(wave)).mean(axis=0)

    def answer(self, message: object) -> Answer:
        wave, tags = parse(message)
        probabilities = self.probabilities(wave)
        return Answer(
            request_id=str(tags.pop("request_id", None) or uuid.uuid4()),
            probabilities=[float(p) for p in probabilities],
            wave=wave,
            stats=audio.input_stats(wave),
            tags=tags,
        )

    def response(self, answer: Answer) -> dict:
        return {
            "data": {"names": list(CLASSES), "ndarray": [answer.probabilities]},
            "meta": {"tags": {"model_version": self.version, "request_id": answer.request_id}},
        }


def parse(message: object) -> tuple[np.ndarray, dict]:
    """A request -> (prepared 16 kHz waveform, tags)."""
    if not isinstance(message, dict):
        raise BadRequest("the request body must be a JSON object with 'data.ndarray' or 'binData'")
    meta = message.get("meta") or {}
    tags = meta.get("tags") if isinstance(meta, dict) else None
    tags = dict(tags) if isinstance(tags, dict) else {}
    if len(tags) > MAX_TAGS or not all(isinstance(v, str | int | float | bool) for v in tags.values()):
        raise BadRequest(f"meta.tags must be at most {MAX_TAGS} plain values")
    if "request_id" in tags and not REQUEST_ID.fullmatch(str(tags["request_id"])):
        # It names the request's telemetry object: no path separators, a bounded length.
        raise BadRequest("meta.tags.request_id must be 1-128 letters, digits, '.', '_' or '-'")
    if "binData" in message:
        wave = _from_file(message["binData"])
    elif isinstance(message.get("data"), dict) and "ndarray" in message["data"]:
        wave = _from_array(message["data"]["ndarray"])
    else:
        raise BadRequest("no audio: send a 16 kHz waveform as 'data.ndarray' or an audio file as base64 'binData'")
    if not np.any(wave):
        raise BadRequest("the audio is silent (all samples are zero)")
    return wave, tags


def _from_array(value: object) -> np.ndarray:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if not isinstance(value, list) or not value:
        raise BadRequest("'data.ndarray' must be a non-empty list of samples (one mono 16 kHz waveform)")
    if len(value) > audio.MAX_DURATION_S * audio.SAMPLE_RATE:
        raise BadRequest(f"the waveform is longer than {audio.MAX_DURATION_S:.0f} s at 16 kHz")
    try:
        wave = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadRequest("'data.ndarray' must hold numbers only") from None
    if wave.ndim != 1:
        raise BadRequest(f"'data.ndarray' must be one waveform, got an array of shape {list(wave.shape)}")
    if not np.all(np.isfinite(wave)):
        raise BadRequest("the waveform holds NaN or infinite values")
    if len(wave) < audio.MIN_DURATION_S * audio.SAMPLE_RATE:
        raise BadRequest(f"the waveform is shorter than {audio.MIN_DURATION_S} s")
    return audio.trim(wave)


def _from_file(value: object) -> np.ndarray:
    if not isinstance(value, str):
        raise BadRequest("'binData' must be a base64 string")
    if len(value) > MAX_FILE_CHARS:
        raise BadRequest(
            f"'binData' is longer than the {MAX_FILE_CHARS} characters this server accepts (a "
            f"{audio.MAX_DURATION_S:.0f}-s recording at 48 kHz, stereo, 32-bit)"
        )
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("'binData' is not valid base64") from None
    try:
        decoded = audio.decode(data)
    except audio.DecodeError as error:
        raise BadRequest(f"'binData' is not an audio file this server can read: {error}") from None
    if decoded.duration_s > audio.MAX_DURATION_S:
        raise BadRequest(f"the audio is longer than {audio.MAX_DURATION_S:.0f} s")
    if decoded.duration_s < audio.MIN_DURATION_S:
        raise BadRequest(f"the audio is shorter than {audio.MIN_DURATION_S} s")
    return audio.prepare(decoded.samples, decoded.sample_rate)
