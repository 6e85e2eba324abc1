"""Telemetry: every request leaves a record in the object store. Feedback labels arrive later through
Seldon's feedback API.

Request records are written by a background thread, so the object store's latency is not the client's:
``record`` returns once the record is queued. The queue is bounded (a slow store slows requests down
rather than growing memory; one that stops accepting writes gets requests refused with
:class:`TelemetryUnavailable`), a failed write is retried, and ``close`` (run at interpreter exit, which a
gunicorn worker reaches on a graceful stop) writes whatever is still queued: nothing is lost on a clean
shutdown. :func:`read` gives back what was written: the monitor stage and the ingest stage's telemetry
source read it through that one function.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from auscult import audio, layout
from auscult.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    key: str
    wave: np.ndarray
    record: dict


class TelemetryUnavailable(RuntimeError):
    """The store has not kept up for ``queue_timeout_s``: the request is refused rather than left unrecorded."""


class TelemetryWriter:
    def __init__(
        self,
        store: ObjectStore,
        queue_size: int = 256,
        retries: int = 5,
        retry_delay_s: float = 0.2,
        queue_timeout_s: float = 10.0,
    ):
        self.store = store
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.queue_timeout_s = queue_timeout_s
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._writer = threading.Thread(target=self._drain, name="auscult-telemetry", daemon=True)
        self._writer.start()
        self._closed = False

    def record(
        self,
        request_id: str,
        model_version: str,
        wave: np.ndarray,
        probabilities: list[float],
        stats: dict[str, float],
        tags: dict,
    ) -> str:
        """Queue the request's audio and record for writing; return the record's key."""
        if self._closed:
            raise RuntimeError("the telemetry writer is closed")
        now = datetime.now(UTC)
        key = layout.telemetry_record(request_id, now)
        record = {
            "request_id": request_id,
            "received_at": now.isoformat(),
            "model_version": model_version,
            "stats_version": audio.STATS_VERSION,
            "stats": stats,
            "probabilities": probabilities,
            "tags": tags,
        }
        try:
            self._queue.put(_Pending(key, wave, record), timeout=self.queue_timeout_s)
        except queue.Full:
            raise TelemetryUnavailable(
                f"the telemetry store has not accepted a write for {self.queue_timeout_s:.0f} s"
            ) from None
        return key

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.error("telemetry: %d records unwritten: the store did not keep up", self._queue.qsize())
            return
        self._writer.join(timeout_s)
        if self._writer.is_alive():
            log.error("telemetry: %d records still unwritten after %.0f s", self._queue.qsize(), timeout_s)

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def feedback(self, request_id: str, truth: str) -> str:
        return self.store.put_json(
            layout.telemetry_feedback(request_id),
            {
                "request_id": request_id,
                "truth": truth,
                "received_at": datetime.now(UTC).isoformat(),
            },
        )

    def _drain(self) -> None:
        while True:
            pending = self._queue.get()
            try:
                if pending is None:
                    return
                self._write_with_retries(pending)
            finally:
                self._queue.task_done()

    def _write_with_retries(self, pending: _Pending) -> None:
        for attempt in range(self.retries + 1):
            try:
                self._write(pending)
                return
            except (ValueError, TypeError) as error:  # a bad key or record: retrying cannot help
                log.error("telemetry: cannot write %s: %s", pending.key, error)
                return
            except Exception as error:  # noqa: BLE001 - any store failure is retried, then reported
                if attempt == self.retries:
                    log.error("telemetry: could not write %s after %d attempts: %s", pending.key, attempt + 1, error)
                    return
                log.warning("telemetry: writing %s failed (%s); retrying", pending.key, error)
                time.sleep(self.retry_delay_s * 2**attempt)

    def _write(self, pending: _Pending) -> None:
        """The prepared request audio (content-addressed), then the record that points at it."""
        encoded = audio.encode_wav(pending.wave)
        digest = hashlib.sha256(encoded).hexdigest()
        audio_key = layout.telemetry_audio(digest)
        self.store.put_if_absent(audio_key, encoded)
        self.store.put_json(pending.key, {**pending.record, "audio_key": audio_key})


@dataclass
class Telemetry:
    """What serving recorded: request records by key (each names its ``audio_key``), and feedback labels."""

    records: dict[str, dict] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)  # request id -> true class

    def for_model(self, version: str) -> list[dict]:
        return [r for r in self.records.values() if r.get("model_version") == version]


def read(store: ObjectStore) -> Telemetry:
    """Every request record and feedback label in ``store``."""
    telemetry = Telemetry()
    for key in store.list(layout.TELEMETRY_FEEDBACK):
        entry = store.get_json(key)
        telemetry.feedback[entry["request_id"]] = entry["truth"]
    for key in store.list(layout.TELEMETRY_RECORDS):
        telemetry.records[key] = store.get_json(key)
    return telemetry
