from datetime import UTC, datetime, timedelta

import pytest

from auscult import layout, working


def test_a_run_s_working_data_is_released_whole_and_only_its_own(any_store, tmp_path):
    source = tmp_path / "windows.npy"
    source.write_bytes(b"\x93NUMPY" + bytes(1000))
    for run in ("run-a", "run-b"):
        uri = working.publish(any_store, run, layout.run_windows(run, 0, 2), source)
        assert uri == any_store.uri(layout.run_windows(run, 0, 2))
    assert any_store.get(layout.run_windows("run-a", 0, 2)) == source.read_bytes()
    assert working.release(any_store, "run-a") == 2  # the windows and the start stamp
    assert not any_store.list(layout.run_work("run-a"))
    assert any_store.list(layout.run_work("run-b"))


def test_working_data_goes_only_under_its_run(any_store, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match="not working data of run"):
        working.publish(any_store, "run-a", layout.lake("ab" * 32, "wav"), tmp_path / "f")
    with pytest.raises(ValueError, match="not working data of run"):
        working.publish(any_store, "run-a", layout.run_windows("run-b", 0, 1), tmp_path / "f")


def test_the_retention_rule_releases_what_dead_runs_left_and_keeps_live_ones(store, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    now = datetime(2026, 12, 2, tzinfo=UTC)
    working.begin(store, "old", now - timedelta(days=working.RETENTION_DAYS + 1))
    working.begin(store, "recent", now - timedelta(hours=1))
    for run in ("old", "recent"):
        working.publish(store, run, layout.training_input(run) + "recordings.parquet", tmp_path / "f")
    store.put(layout.run_windows("unknown", 0, 1), b"orphan without a start stamp")
    assert working.sweep(store, now) == ["old", "unknown"]
    assert not store.list(layout.run_work("old")) and not store.list(layout.run_work("unknown"))
    assert len(store.list(layout.run_work("recent"))) == 2
