from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from auscult import audio, layout
from auscult.registry import Registry
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.monitor import MonitorConfig, monitor, record_decision, report_html
from auscult.store import FileStore


def production(store, rng, stats_version=audio.STATS_VERSION):
    registry = Registry(store)
    reference = {
        "stats_version": stats_version,
        "input": {name: rng.normal(0, 1, 500).tolist() for name in audio.STAT_NAMES},
        "prediction": np.clip(np.r_[rng.normal(0.2, 0.05, 250), rng.normal(0.8, 0.05, 250)], 0, 1).tolist(),
    }
    version = registry.register(b"onnx", {}, reference)
    registry.promote(version, "test")
    return registry, version


def send(store, version, rng, shift, count=60, feedback=True):
    with TelemetryWriter(store, Path(store.path) / ".spool") as writer:
        for i in range(count):
            stats = {name: float(rng.normal(shift, 1)) for name in audio.STAT_NAMES}
            positive = i % 2
            score = float(np.clip(rng.uniform(0, 1) if shift else 0.2 + 0.6 * positive + rng.normal(0, 0.05), 0, 1))
            writer.record(f"r{i}", version, np.zeros(1600, np.float32), [1 - score, score], stats, {})
            if feedback:
                writer.feedback(f"r{i}", ("negative", "positive")[positive])


def test_nothing_in_production(store):
    result = monitor(Registry(store))
    assert not result.retrain and "no model in production" in result.reasons[0]


def test_too_little_traffic_decides_nothing(store):
    rng = np.random.default_rng(0)
    registry, version = production(store, rng)
    send(store, version, rng, 0.0, count=5)
    result = monitor(registry)
    assert not result.retrain and "only 5 requests" in result.reasons[0]
    assert result.feedback == 5  # counted even when too few to judge


def test_shifted_inputs_trigger_retraining_with_reasons(store):
    rng = np.random.default_rng(1)
    registry, version = production(store, rng)
    send(store, version, rng, shift=2.0)
    result = monitor(registry, MonitorConfig())
    assert result.retrain
    assert any("rms_dbfs drifted" in r for r in result.reasons)
    assert all(d["drifted"] for d in result.drift if d["name"] != "prediction")
    assert result.feedback == 60
    record_decision(registry, result)
    assert store.list(layout.MONITOR_DECISIONS)
    assert "data:image/png;base64" in report_html(result)


def test_stable_traffic_with_good_feedback_keeps_the_model(store):
    rng = np.random.default_rng(2)
    registry, version = production(store, rng)
    send(store, version, rng, shift=0.0)
    result = monitor(registry)
    assert not result.retrain, result.reasons
    assert result.feedback_auroc > 0.9 and "no drift" in result.reasons[0]


def test_statistics_of_another_definition_are_not_compared(store):
    rng = np.random.default_rng(3)
    registry, version = production(store, rng, stats_version=1)  # a reference from before the centroid changed
    send(store, version, rng, shift=0.0)
    result = monitor(registry)
    assert [d["name"] for d in result.drift] == ["prediction"]
    assert result.retrain and any("input drift not judged" in r and "version 1" in r for r in result.reasons)
    assert "data:image/png;base64" in report_html(result)


def put_records(store, version, rng, at, count, shift=0.0):
    """Requests as serving files them, received at ``at``."""
    for i in range(count):
        stats = {name: float(rng.normal(shift, 1)) for name in audio.STAT_NAMES}
        score = float(rng.uniform(0, 1))
        record = {"request_id": f"old{i}", "model_version": version, "stats_version": audio.STATS_VERSION}
        record |= {"stats": stats, "probabilities": [1 - score, score], "tags": {}, "audio_key": "none"}
        store.put_json(layout.telemetry_record(f"old{i}", at), record)


def test_monitoring_reads_only_the_telemetry_of_its_window(store, monkeypatch):
    import auscult.stages.monitor as stage

    rng = np.random.default_rng(5)
    registry, version = production(store, rng)
    send(store, version, rng, shift=0.0)
    windowed = monitor(registry)
    monkeypatch.setattr(stage, "window_start", lambda *_: None)
    assert monitor(registry) == windowed, "the window holds every request the version answered"
    monkeypatch.undo()
    # Records filed long before the version was registered are not even listed.
    put_records(store, version, rng, datetime(2020, 1, 1, tzinfo=UTC), 5)
    listed = []
    listing = FileStore.listing

    def spied(self, *args):
        found = listing(self, *args)
        listed.extend(f.key for f in found)
        return found

    monkeypatch.setattr(FileStore, "listing", spied)
    assert monitor(registry) == windowed
    assert listed and not [key for key in listed if "/2020/" in key]


def test_a_window_of_days_leaves_out_older_requests(store):
    rng = np.random.default_rng(6)
    registry, version = production(store, rng)
    card_key = layout.model_version(registry.name, version, layout.MODEL_CARD_FILE)
    month_ago = datetime.now(UTC) - timedelta(days=40)
    store.put_json(card_key, {**registry.card(version), "registered_at": month_ago.isoformat()})
    put_records(store, version, rng, datetime.now(UTC) - timedelta(days=35), 20, shift=3.0)
    send(store, version, rng, shift=0.0)
    assert monitor(registry).requests == 80
    recent = monitor(registry, MonitorConfig(window_days=30))
    assert recent.requests == 60 and not recent.retrain, recent.reasons
