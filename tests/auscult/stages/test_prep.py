import json
import pickle

import numpy as np
import pandas as pd
import pytest

from auscult import progress
from auscult.stages.prep import (
    INDEX_FILE,
    Prepared,
    PreparedShard,
    ShardedWindows,
    drop_windows,
    merge,
    prep,
    prep_shard,
)
from auscult.stages.split import split, usable


@pytest.fixture(scope="module")
def split_table(labelled):
    return split(labelled)


def test_only_usable_labelled_recordings_are_windowed(prepared, labelled):
    chosen = usable(labelled)
    assert prepared.table["windows"].notna().sum() == chosen.sum()
    assert prepared.table.loc[chosen, "split"].notna().all()
    assert prepared.windows.shape == (len(prepared.index), 32000)
    assert prepared.windows.dtype == np.float32
    assert prepared.table.loc[chosen, "input_rms_dbfs"].notna().all()


def test_windows_stream_to_npy_files_in_table_order_whatever_the_threads(split_table, tmp_path):
    one_thread = prep(split_table, tmp_path / "one", workers=1, progress=lambda _: None)
    assert isinstance(one_thread.windows.part(0), np.memmap)
    assert np.load(tmp_path / "one" / "windows-00000-of-00001.npy").shape == one_thread.windows.shape
    threaded = prep(split_table, tmp_path / "four", workers=4, progress=lambda _: None)
    assert np.array_equal(threaded.windows[:], one_thread.windows[:])
    assert threaded.index.equals(one_thread.index)
    back = Prepared.load(tmp_path / "four")
    assert back.table.equals(threaded.table)
    first = back.index.iloc[0]
    row = back.table.loc[back.table["recording_id"] == first["recording_id"]].iloc[0]
    assert row["windows"] >= 1 and row["split"] == first["split"]
    order = back.table.reset_index().set_index("recording_id")["index"]
    assert order.loc[back.index["recording_id"]].is_monotonic_increasing  # the index follows the table's rows


@pytest.mark.parametrize("count", [3, 8])
def test_any_sharding_gives_the_same_tables_windows_and_audit(split_table, prepared, count, tmp_path):
    """The acceptance's same-answer test for prep: the split is global (fixed before prep), and the merge puts the
    shards back in the table's order."""
    sharded = prep(split_table, tmp_path, count=count, progress=lambda _: None)
    assert len(list(tmp_path.glob("windows-*.npy"))) == count
    assert sharded.table.equals(prepared.table)
    columns = ["recording_id", "participant_id", "split", "label", "window"]
    assert sharded.index[columns].equals(prepared.index[columns])
    assert sharded.index["shard"].nunique() > 1
    np.testing.assert_array_equal(sharded.windows[:], prepared.windows[:])
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(sharded.split(name)[0][:], prepared.split(name)[0][:])
    pd.testing.assert_frame_equal(sharded.audit, prepared.audit)


def test_a_shard_task_and_the_merge_are_what_prep_composes(split_table, prepared, tmp_path):
    """As the pipeline runs it: each shard on its own (saved and loaded as its artifact), the merge on the parts in
    any order, with the window files elsewhere (the run's working data)."""
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    parts = []
    for shard in (2, 0, 1):
        part = prep_shard(split_table, shard, 3, elsewhere / f"{shard}.npy", progress=lambda _: None)
        part.save(tmp_path / f"part-{shard}")
        parts.append(PreparedShard.load(tmp_path / f"part-{shard}"))
    merged = merge(split_table, parts, tmp_path / "merged")
    assert merged.table.equals(prepared.table)
    np.testing.assert_array_equal(merged.windows[:], prepared.windows[:])
    with pytest.raises(ValueError, match="every shard once"):
        merge(split_table, parts[:2], tmp_path / "short")


def test_progress_is_reported(split_table, tmp_path):
    lines = []
    prep(split_table, tmp_path, progress=lines.append)
    last = progress.parse(lines[-1])
    assert last.stage == "prep" and last.unit == "recordings" and last.done == last.total > 0


def test_a_split_reads_only_the_rows_asked_for_and_indexes_like_an_array(prepared):
    windows, index = prepared.split("validation")
    rows = np.flatnonzero(prepared.index["split"] == "validation")
    assert len(windows) == len(index) == len(rows) and windows.shape == (len(rows), 32000)
    assert isinstance(prepared.windows, ShardedWindows)
    np.testing.assert_array_equal(windows[0], prepared.windows[rows[0]])
    np.testing.assert_array_equal(windows[1:3], prepared.windows[rows[1:3]])
    np.testing.assert_array_equal(windows[np.array([0, 2])], prepared.windows[rows[[0, 2]]])
    assert not isinstance(windows[0:2], np.memmap)  # a copy of two rows, not a view of the file


def test_prepared_data_pickles_without_its_open_files(prepared):
    """What a local training worker process receives: the index, and files to open itself."""
    prepared.windows[0]
    copy = pickle.loads(pickle.dumps(prepared))
    assert copy.windows._open == {}
    np.testing.assert_array_equal(copy.windows[[3, 1]], prepared.windows[[3, 1]])


def test_window_files_in_an_object_store_are_read_in_ranges_not_whole(split_table, any_store, tmp_path, monkeypatch):
    """What a training worker on a cluster does: it reads its rows of each batch and nothing else of the file."""
    from auscult.stages import prep as prep_module

    local = prep(split_table, tmp_path / "local", count=2, progress=lambda _: None)
    where = [any_store.put_file(f"work/r/{path.name}", path) for path in sorted((tmp_path / "local").glob("*.npy"))]
    (tmp_path / "local" / "shards.json").write_text(json.dumps({"samples": 32000, "windows": where}))
    fetched = []
    original = prep_module.read_uri_range
    monkeypatch.setattr(prep_module, "read_uri_range", lambda *a: fetched.append(a[2]) or original(*a))
    remote = Prepared.load(tmp_path / "local")
    rows = np.array([5, 3, 4, 0])
    np.testing.assert_array_equal(remote.windows[rows], local.windows[rows])
    np.testing.assert_array_equal(remote.windows[1], local.windows[1])
    header_reads = sum(1 for length in fetched if length == prep_module.StoredWindows.HEADER_BYTES)
    assert sum(fetched) - header_reads * prep_module.StoredWindows.HEADER_BYTES <= 5 * 32000 * 4
    np.testing.assert_array_equal(remote.windows[:], local.windows[:])


def test_nothing_usable_gives_an_empty_but_loadable_result(split_table, tmp_path):
    result = prep(split_table.assign(label_status="review"), tmp_path, progress=lambda _: None)
    assert result.windows.shape == (0, 32000) and len(result.index) == 0
    assert result.table["windows"].isna().all()
    assert Prepared.load(tmp_path).windows.shape == (0, 32000)


def test_dropping_windows_rewrites_the_files_and_renumbers_the_index(split_table, tmp_path):
    before = prep(split_table, tmp_path, count=3, progress=lambda _: None)
    gone = before.index["participant_id"] == before.index["participant_id"].iloc[0]
    kept_windows = before.windows[np.flatnonzero(~gone.to_numpy())]
    drop_windows(tmp_path, ~gone.to_numpy())
    after = Prepared.load(tmp_path)
    assert len(after.index) == len(before.index) - gone.sum()
    assert not after.index["participant_id"].isin(before.index.loc[gone, "participant_id"]).any()
    np.testing.assert_array_equal(after.windows[:], kept_windows)
    sizes = sum(np.load(path, mmap_mode="r").shape[0] for path in tmp_path.glob("windows-*.npy"))
    assert sizes == len(after.index) and (tmp_path / INDEX_FILE).is_file()


def test_prep_audits_the_training_participants_and_keeps_the_audit(prepared):
    from auscult import audit
    from auscult.stages.prep import audit_markdown

    found = prepared.audit
    assert set(found["property"]) == {*audit.CATEGORICAL, *audit.CONTINUOUS}
    assert (found["auroc_ci_low"].dropna() <= found["auroc"].dropna()).all()
    assert found.loc[found["strata"] < 2, "auroc"].isna().all()  # one stratum says nothing
    text = audit_markdown(prepared)
    assert "| property | strata | AUROC alone (training participants) |" in text
    assert "| by | value | recordings | quarantined |" in text
