"""Telemetry: every request leaves a record in the object store, written before the answer is returned,
so nothing is lost when the server stops. Feedback labels arrive later through Seldon's feedback API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np

from auscult import audio
from auscult.store import ObjectStore

TELEMETRY_RECORDS = "telemetry/records/"
TELEMETRY_FEEDBACK = "telemetry/feedback/"
TELEMETRY_AUDIO = "telemetry/audio/"


class TelemetryWriter:
    def __init__(self, store: ObjectStore):
        self.store = store

    def record(
        self,
        request_id: str,
        model_version: str,
        wave: np.ndarray,
        probabilities: list[float],
        stats: dict[str, float],
        tags: dict,
    ) -> str:
        """Store the prepared request audio (content-addressed) and the request's record; return its key."""
        encoded = audio.encode_wav(wave)
        digest = hashlib.sha256(encoded).hexdigest()
        audio_key = f"{TELEMETRY_AUDIO}{digest[:2]}/{digest}.wav"
        self.store.put_if_absent(audio_key, encoded)
        now = datetime.now(UTC)
        key = f"{TELEMETRY_RECORDS}{now:%Y/%m/%d}/{request_id}.json"
        self.store.put_json(
            key,
            {
                "request_id": request_id,
                "received_at": now.isoformat(),
                "model_version": model_version,
                "audio_key": audio_key,
                "stats": stats,
                "probabilities": probabilities,
                "tags": tags,
            },
        )
        return key

    def feedback(self, request_id: str, truth: str) -> str:
        return self.store.put_json(
            f"{TELEMETRY_FEEDBACK}{request_id}.json",
            {
                "request_id": request_id,
                "truth": truth,
                "received_at": datetime.now(UTC).isoformat(),
            },
        )
