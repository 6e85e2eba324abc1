"""Telemetry: spooled durably before an answer, uploaded in the background, refused (never lost) when the store
stays away, and read back without trusting what the store holds."""

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from auscult import audio, layout
from auscult.layout import TELEMETRY_RECORDS
from auscult.serving import spool, telemetry
from auscult.serving.telemetry import TelemetryUnavailable, TelemetryWriter
from auscult.store import FileStore

WAVE = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
STATS = audio.input_stats(WAVE)


class GatedStore(FileStore):
    """Refuses every write while ``down`` is set, as an object store does during an outage."""

    def __init__(self, root):
        super().__init__(root)
        self.down = threading.Event()
        self.refused = 0

    def put(self, key, data):
        if self.down.is_set():
            self.refused += 1
            raise ConnectionError("store unavailable")
        return super().put(key, data)


def wait_for(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_close_writes_everything_spooled(tmp_path):
    store = FileStore(tmp_path / "store")
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        keys = [writer.record(f"r{i}", "v1", WAVE * (i + 1), [0.4, 0.6], STATS, {"i": i}) for i in range(40)]
    assert sorted(store.list(TELEMETRY_RECORDS)) == sorted(keys)
    record = store.get_json(keys[3])
    assert record["tags"] == {"i": 3} and record["probabilities"] == [0.4, 0.6]
    decoded = audio.decode(store.get(record["audio_key"]))
    np.testing.assert_allclose(decoded.samples[:, 0], np.clip(WAVE * 4, -1, 1), atol=2 / 32767)
    assert not any((tmp_path / "spool").iterdir())  # an emptied spool leaves nothing behind


def test_what_is_written_reads_back_with_its_feedback(tmp_path):
    store = FileStore(tmp_path / "store")
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        for i, version in enumerate(("v1", "v1", "v2")):
            writer.record(f"r{i}", version, WAVE, [0.3, 0.7], STATS, {})
        writer.feedback("r1", "positive")
    recorded = telemetry.read(store)
    assert len(recorded.records) == 3 and recorded.feedback == {"r1": "positive"}
    assert [r["request_id"] for r in recorded.for_model("v1")] == ["r0", "r1"]
    assert all(store.exists(r["audio_key"]) for r in recorded.records.values())


def test_an_outage_is_spooled_and_uploaded_when_the_store_returns(tmp_path):
    store = GatedStore(tmp_path / "store")
    store.down.set()
    writer = TelemetryWriter(store, tmp_path / "spool", retry_delay_s=0.01, max_retry_delay_s=0.05)
    keys = [writer.record(f"r{i}", "v1", WAVE, [0.5, 0.5], STATS, {}) for i in range(10)]
    assert wait_for(lambda: store.refused >= 3)
    assert store.list(TELEMETRY_RECORDS) == [] and len(writer.spool.pending()) == 10
    assert "ConnectionError" in writer.health()["last_error"]
    store.down.clear()
    assert wait_for(lambda: len(store.list(TELEMETRY_RECORDS)) == 10)
    writer.close()
    assert sorted(store.list(TELEMETRY_RECORDS)) == sorted(keys)
    assert writer.health()["last_error"] is None


def test_a_long_outage_gets_requests_refused_not_dropped(tmp_path):
    store = GatedStore(tmp_path / "store")
    store.down.set()
    writer = TelemetryWriter(store, tmp_path / "spool", max_outage_s=0.2, retry_delay_s=0.01, max_retry_delay_s=0.05)
    writer.record("r0", "v1", WAVE, [0.5, 0.5], STATS, {})
    assert wait_for(lambda: writer.refusing() is not None)
    with pytest.raises(TelemetryUnavailable, match="refused writes for more than 0 s"):
        writer.record("r1", "v1", WAVE, [0.5, 0.5], STATS, {})
    store.down.clear()
    writer.close()
    assert [store.get_json(k)["request_id"] for k in store.list(TELEMETRY_RECORDS)] == ["r0"]


def test_a_full_spool_gets_requests_refused(tmp_path):
    store = GatedStore(tmp_path / "store")
    store.down.set()
    writer = TelemetryWriter(store, tmp_path / "spool", max_spool_bytes=40_000, retry_delay_s=0.01)
    accepted = 0
    with pytest.raises(TelemetryUnavailable, match="spool"):
        for i in range(10):
            writer.record(f"r{i}", "v1", WAVE, [0.5, 0.5], STATS, {})
            accepted += 1
    assert 1 <= accepted < 10
    store.down.clear()
    writer.close()
    assert len(store.list(TELEMETRY_RECORDS)) == accepted


def test_entries_of_a_killed_process_are_adopted_and_uploaded(tmp_path):
    """A process that spooled entries and died by SIGKILL before uploading them: the next writer uploads them."""
    store = FileStore(tmp_path / "store")
    pid = os.fork()
    if pid == 0:  # the child spools three entries, never uploads them, and is killed
        try:
            child = spool.Spool(tmp_path / "spool", 2**20)
            for i in range(3):
                key = layout.telemetry_feedback(f"r{i}", datetime.now(UTC))
                child.append([spool.Write(key, json.dumps({"i": i}).encode())])
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    assert store.list() == []
    with TelemetryWriter(store, tmp_path / "spool"):
        assert wait_for(lambda: len(store.list(layout.TELEMETRY_FEEDBACK)) == 3)
    assert [store.get_json(k)["i"] for k in store.list(layout.TELEMETRY_FEEDBACK)] == [0, 1, 2]


def test_a_live_process_keeps_its_entries(tmp_path):
    first = spool.Spool(tmp_path, 2**20)
    first.append([spool.Write("k", b"v")])
    second = spool.Spool(tmp_path, 2**20)
    assert second.adopt_orphans() == 0 and len(first.pending()) == 1


def test_an_unreadable_entry_is_set_aside_not_deleted(tmp_path):
    store = FileStore(tmp_path / "store")
    writer = TelemetryWriter(store, tmp_path / "spool")
    (writer.spool.folder / "000000000999.spool").write_bytes(b'{"writes": [{"key": "k", "size": 99}]}\nshort')
    writer._wake.set()
    assert wait_for(lambda: (tmp_path / "spool" / "unreadable").is_dir())
    writer.close()
    assert [p.read_bytes()[-5:] for p in (tmp_path / "spool" / "unreadable").iterdir()] == [b"short"]


def test_read_names_what_is_not_a_record_and_keeps_the_rest(tmp_path):
    store = FileStore(tmp_path / "store")
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        writer.record("good", "v1", WAVE, [0.5, 0.5], STATS, {})
        writer.feedback("good", "positive")
    store.put(f"{TELEMETRY_RECORDS}2026/01/01/junk.json", b"\xff not json")
    store.put(f"{TELEMETRY_RECORDS}2026/01/01/list.json", b"[1, 2]")
    store.put(f"{TELEMETRY_RECORDS}2026/01/01/deep.json", b"[" * 100_000)
    store.put_json(f"{TELEMETRY_RECORDS}2026/01/01/partial.json", {"request_id": "x", "tags": "no"})
    bad = layout.telemetry_feedback("bad", datetime(2026, 1, 1, tzinfo=UTC))
    store.put_json(bad, {"request_id": 7, "truth": "positive"})
    recorded = telemetry.read(store)
    assert [r["request_id"] for r in recorded.records.values()] == ["good"]
    assert recorded.feedback == {"good": "positive"}
    assert len(recorded.unreadable) == 5
    assert any("not JSON" in why for why in recorded.unreadable.values())
