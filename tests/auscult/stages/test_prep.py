import numpy as np
import pytest

from auscult import progress
from auscult.stages.prep import Prepared, PrepConfig, prep


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_participant_is_on_two_sides_and_splits_are_stratified(labelled, seed, tmp_path):
    result = prep(labelled, tmp_path, PrepConfig(seed=seed), progress=lambda _: None)
    per_person = result.index.groupby("participant_id")["split"].nunique()
    assert (per_person == 1).all()
    for split in ("train", "validation", "test"):
        labels = set(result.index.loc[result.index["split"] == split, "label"])
        assert labels == {0, 1}, f"{split} lacks a class"


def test_only_usable_labelled_recordings_are_windowed(prepared, labelled):
    usable = (labelled["status"] == "ok") & (labelled["label_status"] == "labelled")
    assert prepared.table["split"].notna().sum() == usable.sum()
    assert prepared.windows.shape == (len(prepared.index), 32000)
    assert prepared.windows.dtype == np.float32
    assert prepared.table.loc[usable, "input_rms_dbfs"].notna().all()


def test_windows_stream_to_a_loadable_npy_in_table_order(labelled, tmp_path):
    one_thread = prep(labelled, tmp_path / "one", workers=1, progress=lambda _: None)
    assert isinstance(one_thread.windows, np.memmap)
    assert np.load(tmp_path / "one" / "windows.npy").shape == one_thread.windows.shape
    threaded = prep(labelled, tmp_path / "four", workers=4, progress=lambda _: None)
    assert np.array_equal(threaded.windows, one_thread.windows)
    assert threaded.index.equals(one_thread.index)
    back = Prepared.load(tmp_path / "four")
    assert back.table.equals(threaded.table)
    first = back.index.iloc[0]
    row = back.table.loc[back.table["recording_id"] == first["recording_id"]].iloc[0]
    assert row["windows"] >= 1 and row["split"] == first["split"]


def test_progress_is_reported(labelled, tmp_path):
    lines = []
    prep(labelled, tmp_path, progress=lines.append)
    last = progress.parse(lines[-1])
    assert last.stage == "prep" and last.unit == "recordings" and last.done == last.total > 0


def test_a_split_reads_only_the_rows_asked_for_and_indexes_like_an_array(prepared):
    windows, index = prepared.split("validation")
    rows = np.flatnonzero(prepared.index["split"] == "validation")
    assert len(windows) == len(index) == len(rows) and windows.shape == (len(rows), 32000)
    assert isinstance(prepared.windows, np.memmap)
    np.testing.assert_array_equal(windows[0], prepared.windows[rows[0]])
    np.testing.assert_array_equal(windows[1:3], prepared.windows[rows[1:3]])
    np.testing.assert_array_equal(windows[np.array([0, 2])], prepared.windows[rows[[0, 2]]])
    assert not isinstance(windows[0:2], np.memmap)  # a copy of two rows, not a view of the file


def test_nothing_usable_gives_an_empty_but_loadable_result(labelled, tmp_path):
    result = prep(labelled.assign(label_status="review"), tmp_path, progress=lambda _: None)
    assert result.windows.shape == (0, 32000) and len(result.index) == 0
    assert result.table["split"].isna().all()
    assert Prepared.load(tmp_path).windows.shape == (0, 32000)
