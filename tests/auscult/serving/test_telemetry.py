import threading

import numpy as np
import pytest

from auscult import audio
from auscult.layout import TELEMETRY_RECORDS
from auscult.serving import telemetry
from auscult.serving.telemetry import TelemetryUnavailable, TelemetryWriter
from auscult.store import FileStore

WAVE = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
STATS = audio.input_stats(WAVE)


class FlakyStore(FileStore):
    """Fails the first ``failures`` writes, as an object store does during a restart."""

    def __init__(self, root, failures):
        super().__init__(root)
        self.failures = failures

    def put(self, key, data):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        return super().put(key, data)


def test_close_writes_everything_queued(tmp_path):
    store = FileStore(tmp_path)
    with TelemetryWriter(store) as writer:
        keys = [writer.record(f"r{i}", "v1", WAVE * (i + 1), [0.4, 0.6], STATS, {"i": i}) for i in range(40)]
    assert sorted(store.list(TELEMETRY_RECORDS)) == sorted(keys)
    record = store.get_json(keys[3])
    assert record["tags"] == {"i": 3} and record["probabilities"] == [0.4, 0.6]
    decoded = audio.decode(store.get(record["audio_key"]))
    np.testing.assert_allclose(decoded.samples[:, 0], np.clip(WAVE * 4, -1, 1), atol=2 / 32767)


def test_what_is_written_reads_back_with_its_feedback(tmp_path):
    store = FileStore(tmp_path)
    with TelemetryWriter(store) as writer:
        for i, version in enumerate(("v1", "v1", "v2")):
            writer.record(f"r{i}", version, WAVE, [0.3, 0.7], STATS, {})
        writer.feedback("r1", "positive")
    recorded = telemetry.read(store)
    assert len(recorded.records) == 3 and recorded.feedback == {"r1": "positive"}
    assert [r["request_id"] for r in recorded.for_model("v1")] == ["r0", "r1"]
    assert all(store.exists(r["audio_key"]) for r in recorded.records.values())


def test_failed_writes_are_retried(tmp_path):
    store = FlakyStore(tmp_path, failures=3)
    with TelemetryWriter(store, retry_delay_s=0.001) as writer:
        key = writer.record("r1", "v1", WAVE, [0.5, 0.5], STATS, {})
    assert store.failures == 0
    assert store.get_json(key)["request_id"] == "r1"


class GatedStore(FileStore):
    """Holds every write until ``gate`` is set, as a store that has stopped answering does."""

    def __init__(self, root):
        super().__init__(root)
        self.gate = threading.Event()

    def put(self, key, data):
        self.gate.wait()
        return super().put(key, data)


def test_a_full_queue_slows_the_caller_instead_of_dropping(tmp_path):
    store = GatedStore(tmp_path)
    writer = TelemetryWriter(store, queue_size=2)
    recorded = []
    caller = threading.Thread(
        target=lambda: recorded.extend(writer.record(f"r{i}", "v1", WAVE, [0.5, 0.5], STATS, {}) for i in range(6))
    )
    caller.start()
    caller.join(0.5)
    assert caller.is_alive() and len(recorded) < 6  # blocked on the full queue
    store.gate.set()
    caller.join(10)
    writer.close()
    assert len(store.list(TELEMETRY_RECORDS)) == 6


def test_a_store_that_stops_accepting_writes_gets_requests_refused(tmp_path):
    store = GatedStore(tmp_path)
    writer = TelemetryWriter(store, queue_size=1, queue_timeout_s=0.1)
    writer.record("r0", "v1", WAVE, [0.5, 0.5], STATS, {})  # taken by the writer, stuck in put
    writer.record("r1", "v1", WAVE, [0.5, 0.5], STATS, {})  # fills the queue
    with pytest.raises(TelemetryUnavailable, match="has not accepted a write"):
        writer.record("r2", "v1", WAVE, [0.5, 0.5], STATS, {})
    store.gate.set()
    writer.close()
    assert len(store.list(TELEMETRY_RECORDS)) == 2
