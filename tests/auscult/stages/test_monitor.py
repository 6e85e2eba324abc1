from pathlib import Path

import numpy as np

from auscult import audio, layout
from auscult.registry import Registry
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.monitor import MonitorConfig, monitor, record_decision, report_html


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
