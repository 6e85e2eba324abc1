import numpy as np
import pytest

from auscult.stages.prep import Prepared, PrepConfig, prep


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_participant_is_on_two_sides_and_splits_are_stratified(labelled, seed):
    result = prep(labelled, PrepConfig(seed=seed), progress=lambda _: None)
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


def test_save_and_load_round_trip(prepared, tmp_path):
    prepared.save(tmp_path)
    back = Prepared.load(tmp_path)
    assert np.array_equal(back.windows, prepared.windows)
    assert back.index.equals(prepared.index)
