from pathlib import Path

import numpy as np
import pytest

from auscult import progress
from auscult.errors import InputError
from auscult.stages.prep import Prepared, PrepConfig, participants_by_class, prep, require_enough_participants


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


def test_the_split_follows_the_data_and_the_seed_not_the_pseudonym_key(cohort, tmp_path):
    """Two workspaces with different keys split the same recordings the same way."""
    from auscult.stages.curate import curate
    from auscult.stages.ingest import ingest
    from auscult.stages.label import label
    from auscult.store import FileStore

    splits = []
    for key in (b"one key", b"another key"):
        store = FileStore(tmp_path / key.decode())
        frame, _ = ingest([str(cohort)], store, key, progress=lambda _: None)
        labelled = label(curate(frame, store, progress=lambda _: None)[0])
        result = prep(labelled, tmp_path / f"prep-{key.decode()}", progress=lambda _: None)
        splits.append(result.table.set_index("recording_id")["split"].sort_index())
    assert splits[0].equals(splits[1])
    assert set(splits[0].dropna()) == {"train", "validation", "test"}


def test_too_few_participants_of_a_class_is_refused_with_the_counts(labelled):
    counts = participants_by_class(labelled)
    assert min(counts.values()) > 3
    assert require_enough_participants(labelled, PrepConfig(min_participants_per_class=1)) == counts
    with pytest.raises(
        InputError, match=r"negative: \d+ participants, positive: \d+ participants; training needs at least 67 of each"
    ):
        require_enough_participants(labelled, PrepConfig())
    one_class = labelled.assign(label=labelled["label"].where(labelled["label"] != "positive"))
    with pytest.raises(InputError, match="positive: 0 participants"):
        require_enough_participants(one_class, PrepConfig(min_participants_per_class=1))


def test_the_split_stays_put_as_the_cohort_grows(labelled):
    """Participants are ordered once by a content hash: new ones slot in, and nobody a model trained on moves
    into a later run's test split, where a comparison with that model would be scored on its own training data."""
    from auscult.stages.prep import split_participants

    usable = labelled[(labelled["status"] == "ok") & (labelled["label_status"] == "labelled")]
    people = sorted(usable["participant_id"].unique())
    before = usable[usable["participant_id"].isin(people[: int(len(people) * 0.75)])]
    first, second = split_participants(before, PrepConfig()), split_participants(usable, PrepConfig())
    trained_on = {p for p, split in first.items() if split == "train"}
    assert trained_on and not [p for p in trained_on if second[p] == "test"]


def test_prep_audits_the_training_participants_and_keeps_the_audit(prepared):
    from auscult import audit
    from auscult.stages.prep import Prepared, audit_markdown

    found = prepared.audit
    assert set(found["property"]) == {*audit.CATEGORICAL, *audit.CONTINUOUS}
    assert (found["auroc_ci_low"].dropna() <= found["auroc"].dropna()).all()
    assert found.loc[found["strata"] < 2, "auroc"].isna().all()  # one stratum says nothing
    text = audit_markdown(prepared)
    assert "| property | strata | AUROC alone (training participants) |" in text
    assert "| by | value | recordings | quarantined |" in text
    assert Prepared.load(Path(prepared.windows.filename).parent).audit.equals(found)
