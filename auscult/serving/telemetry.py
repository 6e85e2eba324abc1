"""Telemetry: every answered request leaves a record in the object store, and feedback labels arrive later
through Seldon's feedback API.

Nothing is answered before its record is durable: :meth:`TelemetryWriter.record` and
:meth:`TelemetryWriter.feedback` append to a local write-ahead spool (:mod:`auscult.serving.spool`, fsynced)
and return; a background thread uploads the spool to the store, retrying with backoff while the store is
away, and entries left by a process that died (SIGKILL included) are adopted and uploaded by the next one.
Only when the spool is full, or the store has refused writes for longer than ``max_outage_s``, are requests
refused (:class:`TelemetryUnavailable`, a 503): never a 200 without a record. :func:`read` gives back what
was written: the monitor stage and the ingest stage's telemetry source read it through that one function, from a
day on (records and labels are filed by day, :mod:`auscult.layout`), so that neither reads all that was ever served.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from auscult import audio, layout
from auscult.serving.spool import Spool, SpoolFull, Write, decode
from auscult.store import ObjectStore, json_bytes

log = logging.getLogger(__name__)

DEFAULT_SPOOL_MB = 256
DEFAULT_MAX_OUTAGE_S = 300.0


class TelemetryUnavailable(RuntimeError):
    """Telemetry cannot be made durable now: the request is refused rather than answered without a record."""


class TelemetryWriter:
    def __init__(
        self,
        store: ObjectStore,
        spool_root: str | Path,
        max_spool_bytes: int = DEFAULT_SPOOL_MB * 2**20,
        max_outage_s: float = DEFAULT_MAX_OUTAGE_S,
        retry_delay_s: float = 0.2,
        max_retry_delay_s: float = 10.0,
        orphan_scan_s: float = 30.0,
    ):
        self.store = store
        self.spool = Spool(spool_root, max_spool_bytes)
        self.max_outage_s = max_outage_s
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self.orphan_scan_s = orphan_scan_s
        self._last_logged: str | None = None
        self._uploading_since: float | None = None  # a store that takes a connection and never answers
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._uploader = threading.Thread(target=self._upload_loop, name="auscult-telemetry", daemon=True)
        self._uploader.start()

    def record(
        self,
        request_id: str,
        model_version: str,
        wave: np.ndarray,
        probabilities: list[float],
        stats: dict[str, float],
        tags: dict,
        model_run: str | None = None,
    ) -> str:
        """Spool the request's audio and record (durably); return the record's key. ``model_run``: the id of the
        pipeline run that trained the model (its card's lineage), so that a prediction leads back to its data."""
        now = datetime.now(UTC)
        encoded = audio.encode_wav(wave)
        audio_key = layout.telemetry_audio(hashlib.sha256(encoded).hexdigest())
        key = layout.telemetry_record(request_id, now)
        record = {
            "request_id": request_id,
            "received_at": now.isoformat(),
            "model_version": model_version,
            "model_run": model_run,
            "stats_version": audio.STATS_VERSION,
            "stats": stats,
            "probabilities": probabilities,
            "tags": tags,
            "audio_key": audio_key,
        }
        self._spool([Write(audio_key, encoded, if_absent=True), Write(key, json_bytes(record))])
        return key

    def feedback(self, request_id: str, truth: str) -> str:
        now = datetime.now(UTC)
        key = layout.telemetry_feedback(request_id, now)
        entry = {"request_id": request_id, "truth": truth, "received_at": now.isoformat()}
        self._spool([Write(key, json_bytes(entry))])
        return key

    def health(self) -> dict:
        """What an operator needs to see: the backlog, and the store's error while it refuses writes."""
        outage = self.spool.outage()
        return {
            "spooled_entries": len(self.spool.pending()),
            "spooled_mib": round(self.spool.bytes / 2**20, 3),
            "store": self.store.root,
            "store_failing_for_s": None if outage is None else round(time.time() - outage[0], 1),
            "last_error": None if outage is None else outage[1],
        }

    def close(self, timeout_s: float = 10.0) -> None:
        """Upload what the spool holds for up to ``timeout_s``; whatever remains is adopted by the next process."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self._uploader.join(timeout_s)
        left = len(self.spool.pending())
        if left:
            log.warning("telemetry: %d entries stay in the spool %s for the next process", left, self.spool.folder)
        if not self._uploader.is_alive():
            self.spool.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refusing(self) -> str | None:
        """Why new requests are refused now, or None while they are accepted."""
        if self._stopping.is_set():
            return "the telemetry writer is closed"
        stuck = self._uploading_since
        if stuck is not None and time.time() - stuck > self.max_outage_s:
            return f"the telemetry store {self.store.root} has not answered an upload for {time.time() - stuck:.0f} s"
        outage = self.spool.outage()
        if outage is not None and time.time() - outage[0] > self.max_outage_s:
            return (
                f"the telemetry store {self.store.root} has refused writes for more than {self.max_outage_s:.0f} s "
                f"({outage[1]})"
            )
        if self.spool.bytes >= self.spool.max_bytes:
            return f"the telemetry spool is full; the store {self.store.root} says: {outage and outage[1]}"
        return None

    def _spool(self, writes: list[Write]) -> None:
        reason = self.refusing()
        if reason:
            raise TelemetryUnavailable(reason)
        try:
            self.spool.append(writes)
        except SpoolFull as error:
            outage = self.spool.outage()
            raise TelemetryUnavailable(f"{error}; the store {self.store.root} says: {outage and outage[1]}") from None
        except OSError as error:
            raise TelemetryUnavailable(f"cannot write the telemetry spool: {error}") from None
        self._wake.set()

    def _upload_loop(self) -> None:
        delay = self.retry_delay_s
        next_orphan_scan = 0.0
        while True:
            if time.monotonic() >= next_orphan_scan:
                self._adopt_orphans()
                next_orphan_scan = time.monotonic() + self.orphan_scan_s
            pending = self.spool.pending()
            if not pending:
                if self._stopping.is_set():
                    return
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            for entry in pending:
                self._uploading_since = time.time()
                try:
                    self._upload(entry)
                except Exception as error:  # noqa: BLE001 - any store failure is retried until it passes
                    self._failed(error)
                    self._uploading_since = None
                    if self._stopping.is_set():
                        return  # closing while the store is away: the entries stay spooled
                    self._stopping.wait(delay)
                    delay = min(2 * delay, self.max_retry_delay_s)
                    break
                self._uploading_since = None
                if self.spool.end_outage():
                    log.warning("telemetry: the store %s accepts writes again", self.store.root)
                delay = self.retry_delay_s

    def _adopt_orphans(self) -> None:
        try:
            self.spool.adopt_orphans()
        except OSError as error:
            log.error("telemetry: cannot adopt orphaned spool entries: %s", error)

    def _upload(self, entry: Path) -> None:
        """Every write of one entry, in order (the audio before the record that names it), then the entry goes."""
        try:
            writes = decode(entry.read_bytes())
        except ValueError as error:
            self.spool.set_aside(entry, str(error))
            return
        for write in writes:
            if write.if_absent:
                self.store.put_if_absent(write.key, write.data)
            else:
                self.store.put(write.key, write.data)
        self.spool.remove(entry)

    def _failed(self, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        if self.spool.report_outage(message):
            log.error(
                "telemetry: cannot write to the store %s (%s); requests are spooled at %s and refused after %.0f s",
                self.store.root,
                message,
                self.spool.root,
                self.max_outage_s,
            )
        elif message != self._last_logged:
            log.error("telemetry: the store %s still refuses writes: %s", self.store.root, message)
        self._last_logged = message


@dataclass
class Telemetry:
    """What serving recorded: request records by key (each names its ``audio_key``), feedback labels, and the
    objects under the telemetry prefixes that are not records this project wrote (key -> why)."""

    records: dict[str, dict] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)  # request id -> true class (its newest label)
    # Request id -> the key of every label read for it, oldest first: the last gave ``feedback``.
    feedback_keys: dict[str, list[str]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def for_model(self, version: str) -> list[dict]:
        return [r for r in self.records.values() if r.get("model_version") == version]


RECORD_FIELDS = {"request_id": str, "model_version": str, "audio_key": str, "stats": dict, "tags": dict}


def read(store: ObjectStore, since: date | None = None, known: Container[str] = frozenset()) -> Telemetry:
    """The request records and feedback labels in ``store`` filed on day ``since`` or later (every one when None),
    less those whose keys are ``known`` (a caller that read them before: they are not read again); anything else
    there is named, not trusted. A label is filed by the day it arrived, so a late label for an earlier request is
    read with the day it came."""
    telemetry = Telemetry()

    def keys(prefix: str) -> list[str]:
        after = "" if since is None else layout.telemetry_from(prefix, since)
        return [key for key in store.list(prefix, start_after=after) if key not in known]

    for key in keys(layout.TELEMETRY_FEEDBACK):  # in key order: a request's newer label comes later and wins
        entry = _object(store, key, {"request_id": str, "truth": str}, telemetry)
        if entry is not None:
            telemetry.feedback[entry["request_id"]] = entry["truth"]
            telemetry.feedback_keys.setdefault(entry["request_id"], []).append(key)
    for key in keys(layout.TELEMETRY_RECORDS):
        record = _object(store, key, RECORD_FIELDS, telemetry)
        if record is not None:
            telemetry.records[key] = record
    return telemetry


def feedback_keys(store: ObjectStore, request_id: str) -> list[str]:
    """The key of every label given for ``request_id``, oldest first (any day: it reads every label)."""
    found = Telemetry()
    for key in store.list(layout.TELEMETRY_FEEDBACK):
        entry = _object(store, key, {"request_id": str, "truth": str}, found)
        if entry is not None and entry["request_id"] == request_id:
            found.feedback_keys.setdefault(request_id, []).append(key)
    return found.feedback_keys.get(request_id, [])


def _object(store: ObjectStore, key: str, fields: dict[str, type], telemetry: Telemetry) -> dict | None:
    try:
        value = store.get_json(key)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        telemetry.unreadable[key] = f"not JSON ({type(error).__name__}: {str(error)[:200]})"
        return None
    wrong = [
        name for name, kind in fields.items() if not isinstance(value, dict) or not isinstance(value.get(name), kind)
    ]
    if wrong:
        telemetry.unreadable[key] = f"lacks {', '.join(wrong)} of the right type"
        return None
    return value
