"""The serving runtime: ONNX Runtime over the exported model, and the request/response contract.

Requests follow Seldon's JSON message format:

* ``{"data": {"ndarray": [...]}}``: one mono float32 waveform at 16 kHz (a flat list, or a list holding one);
* ``{"binData": "<base64>"}``: an encoded audio file (wav, flac, ogg, mp3) at any rate and channel count;
* optional ``"meta": {"tags": {...}}``: the tags of :data:`TEXT_TAGS` and ``age``, carried into telemetry; a
  client's own ``request_id`` is kept as the tag ``client_request_id``.

The response holds the class probabilities under ``data``, and under ``meta.tags`` the model version, the
request id the server gave the request, and that id's signature, which feedback must present (so that only
the server's own answers can be labelled). Anything malformed raises :class:`BadRequest`, which the server
turns into a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import re
import uuid
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from auscult import audio
from auscult.serving import contract
from auscult.task import CLASSES, MAX_AGE

# An encoded file of the longest recording accepted, with room to spare: 48 kHz stereo float WAV, in base64.
MAX_FILE_CHARS = int(audio.MAX_DURATION_S * 48_000 * 2 * 4 * 4 / 3) + 4096
# Tags a client may send, with their longest value: letters, digits, spaces and ._:,@+/()#- only, so that a
# tag can never be markup, a formula's start aside, or a path to anything (tags never name a store key).
TEXT_TAGS = {"participant": 128, "sound_type": 32, "device": 64, "sex": 16, "client_request_id": 128}
TAG_TEXT = re.compile(r"[\w .,:@+/()#-]+")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # the server's own ids: uuid4().hex
FULL_SCALE_TOLERANCE = 2.0  # float files may overshoot full scale a little; curate judges clipping


class BadRequest(ValueError):
    """The request cannot be answered as sent; the message says why."""


class Forbidden(BadRequest):
    """The request names something this server did not issue (a forged or altered request id)."""


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_signature(key: bytes, request_id: str) -> str:
    return hmac.new(key, f"auscult-request:{request_id}".encode(), hashlib.sha256).hexdigest()


def verify_request(key: bytes, request_id: object, signature: object) -> str:
    """The request id when ``signature`` is this server's signature of it; Forbidden otherwise."""
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise BadRequest("feedback needs response.meta.tags.request_id as the server returned it")
    if not isinstance(signature, str) or not hmac.compare_digest(signature, request_signature(key, request_id)):
        raise Forbidden(
            "response.meta.tags.request_signature does not match request_id: feedback is accepted only for "
            "requests this server answered, with the tags it returned"
        )
    return request_id


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
        if not np.all(np.isfinite(probabilities)):
            raise BadRequest("the model's output for this audio is not a number: are its samples within [-1, 1]?")
        return Answer(
            request_id=new_request_id(),
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
    meta = message.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("'meta' must be an object")
    tags = valid_tags((meta or {}).get("tags"))
    if "binData" in message:
        wave = _from_file(message["binData"])
    elif isinstance(message.get("data"), dict) and "ndarray" in message["data"]:
        wave = _from_array(message["data"]["ndarray"])
    else:
        raise BadRequest("no audio: send a 16 kHz waveform as 'data.ndarray' or an audio file as base64 'binData'")
    if not np.any(wave):
        raise BadRequest("the audio is silent (all samples are zero)")
    return wave, tags


def valid_tags(tags: object) -> dict[str, str | float]:
    """The tags of a request, checked one by one; BadRequest naming the first that is wrong."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise BadRequest("meta.tags must be an object of tag names and values")
    if "request_id" in tags:  # the server names requests; a client's own id is kept beside it
        tags = {("client_request_id" if name == "request_id" else name): value for name, value in tags.items()}
    valid: dict[str, str | float] = {}
    for name, value in tags.items():
        if name == "age":
            valid[name] = _age(value)
        elif name in TEXT_TAGS:
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or len(value) > TEXT_TAGS[name] or not TAG_TEXT.fullmatch(value):
                raise BadRequest(
                    f"meta.tags.{name} must be text of 1-{TEXT_TAGS[name]} letters, digits, spaces or ._:,@+/()#-"
                )
            valid[name] = value
        else:
            known = ", ".join([*TEXT_TAGS, "age", "request_id"])
            raise BadRequest(f"unknown tag {str(name)[:64]!r} in meta.tags (known: {known})")
    return valid


def _age(value: object) -> float:
    try:
        plain = isinstance(value, int | float) and not isinstance(value, bool)
        age = float(value) if plain or (isinstance(value, str) and len(value) <= 16) else math.nan
    except (ValueError, OverflowError):
        age = math.nan
    if not 0 <= age <= MAX_AGE:  # NaN and infinities fail too
        raise BadRequest(f"meta.tags.age must be a number of years from 0 to {MAX_AGE}")
    return age


def _from_array(value: object) -> np.ndarray:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if not isinstance(value, list) or not value:
        raise BadRequest("'data.ndarray' must be a non-empty list of samples (one mono 16 kHz waveform)")
    if len(value) > audio.MAX_DURATION_S * audio.SAMPLE_RATE:
        raise BadRequest(f"the waveform is longer than {audio.MAX_DURATION_S:.0f} s at 16 kHz")
    try:
        given = np.asarray(value)
        # Numbers only: numpy would otherwise read "0.1" or true as a sample.
        wave = given.astype(np.float32) if given.dtype.kind in "iuf" else None
    except (TypeError, ValueError, OverflowError):
        wave = None
    if wave is None:
        raise BadRequest("'data.ndarray' must hold numbers only")
    if wave.ndim != 1:
        raise BadRequest(f"'data.ndarray' must be one waveform, got an array of shape {list(wave.shape)}")
    if not np.all(np.isfinite(wave)):
        raise BadRequest("the waveform holds NaN or infinite values")
    if len(wave) < audio.MIN_DURATION_S * audio.SAMPLE_RATE:
        raise BadRequest(f"the waveform is shorter than {audio.MIN_DURATION_S} s")
    _within_full_scale(wave)
    return audio.trim(wave)


def _within_full_scale(samples: np.ndarray) -> None:
    """Samples are in [-1, 1]; anything far beyond is not audio as recorded (16-bit integers sent unscaled, say)
    and would only give statistics and scores that mean nothing."""
    peak = float(np.abs(samples).max())
    if peak > FULL_SCALE_TOLERANCE:
        raise BadRequest(f"samples reach {peak:.3g}: audio must lie within [-1, 1] (full scale)")


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
    if decoded.duration_s < audio.MIN_DURATION_S:
        raise BadRequest(f"the audio is shorter than {audio.MIN_DURATION_S} s")
    _within_full_scale(decoded.samples)
    return audio.prepare(decoded.samples, decoded.sample_rate)
