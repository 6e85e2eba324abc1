import pytest

from auscult.errors import InputError
from auscult.stages.split import (
    SplitConfig,
    participants_by_class,
    require_enough_participants,
    split,
    split_participants,
    usable,
)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_participant_is_on_two_sides_and_splits_are_stratified(labelled, seed):
    result = split(labelled, SplitConfig(seed=seed))
    chosen = result[usable(result)]
    assert (chosen.groupby("participant_id")["split"].nunique() == 1).all()
    assert result.loc[~usable(result), "split"].isna().all()
    for name in ("train", "validation", "test"):
        assert set(chosen.loc[chosen["split"] == name, "label"]) == {"negative", "positive"}, f"{name} lacks a class"


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
        result = split(label(curate(frame, store, progress=lambda _: None)[0]))
        splits.append(result.set_index("recording_id")["split"].sort_index())
    assert splits[0].equals(splits[1])
    assert set(splits[0].dropna()) == {"train", "validation", "test"}


def test_too_few_participants_of_a_class_is_refused_with_the_counts(labelled):
    counts = participants_by_class(labelled)
    assert min(counts.values()) > 3
    assert require_enough_participants(labelled, SplitConfig(min_participants_per_class=1)) == counts
    with pytest.raises(
        InputError, match=r"negative: \d+ participants, positive: \d+ participants; training needs at least 67 of each"
    ):
        require_enough_participants(labelled, SplitConfig())
    one_class = labelled.assign(label=labelled["label"].where(labelled["label"] != "positive"))
    with pytest.raises(InputError, match="positive: 0 participants"):
        require_enough_participants(one_class, SplitConfig(min_participants_per_class=1))


def test_the_split_stays_put_as_the_cohort_grows(labelled):
    """Participants are ordered once by a content hash: new ones slot in, and nobody a model trained on moves
    into a later run's test split, where a comparison with that model would be scored on its own training data."""
    chosen = labelled[usable(labelled)]
    people = sorted(chosen["participant_id"].unique())
    before = chosen[chosen["participant_id"].isin(people[: int(len(people) * 0.75)])]
    first, second = split_participants(before, SplitConfig()), split_participants(chosen, SplitConfig())
    trained_on = {p for p, name in first.items() if name == "train"}
    assert trained_on and not [p for p in trained_on if second[p] == "test"]
