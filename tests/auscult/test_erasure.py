"""Erasure: nothing of the participant is left in the store or the pipeline root, nothing comes back, and the
models trained on them are flagged."""

import csv
import io
import shutil

import numpy as np
import pandas as pd
import pytest

from auscult import layout, synth
from auscult import table as recording_table
from auscult.erasure import erase
from auscult.errors import InputError
from auscult.lineage import Lineage
from auscult.pseudonym import participant_id
from auscult.registry import Registry
from auscult.stages.ingest import ingest
from auscult.stages.monitor import monitor
from tests.auscult.governed import RUN, TELEMETRY_TAG, copy_of
from tests.conftest import KEY

PERSON = {"user": "dpo", "host": "office", "by": "Data Protection Officer"}


def text_of(data: bytes) -> str:
    """What a file or object says, tables included (Parquet compresses its strings; KFP's files have no suffix)."""
    if data[:4] == b"PAR1":
        return pd.read_parquet(io.BytesIO(data)).to_csv()
    return data.decode("utf-8", "replace")


def window_rows(folder) -> int:
    return sum(np.load(path, mmap_mode="r").shape[0] for path in folder.glob("windows-*.npy"))


@pytest.mark.parametrize("who", ["dataset", "telemetry"])
def test_nothing_of_an_erased_participant_is_left_and_nothing_comes_back(who, governed, cohort, any_store, tmp_path):
    root = tmp_path / "pipeline-root"
    version, prepared = copy_of(governed, any_store, root)
    windows_before = window_rows(root / "prep" / "prepared")
    assert any_store.list(layout.run_work(RUN.run_id))
    labelled_before = recording_table.read(root / "label" / "labelled", "label")
    trained = prepared[prepared["split"] == "train"]
    if who == "dataset":
        with open(cohort / synth.METADATA_FILE, newline="") as handle:
            ids = [row["id"] for row in csv.DictReader(handle)]
        # A participant whose recordings the model was trained on.
        source, person = (
            cohort.name,
            next(i for i in ids if participant_id(cohort.name, i, KEY) in set(trained["participant_id"])),
        )
    else:
        source, person = "telemetry", TELEMETRY_TAG
    pseudonym = participant_id(source, person, KEY)
    recordings = set(prepared.loc[prepared["participant_id"] == pseudonym, "recording_id"])
    if who == "telemetry":
        audio_keys = any_store.list(layout.TELEMETRY_AUDIO)
        recordings = {key.rpartition("/")[2].removesuffix(".wav") for key in audio_keys}
    assert recordings, "the participant has recordings to erase"
    needles = recordings | {pseudonym}

    report = erase(any_store, source, person, KEY, PERSON, "consent withdrawn", root)

    assert report.recordings == len(recordings)
    for key in any_store.list():
        said = key + text_of(any_store.get(key))
        assert not any(needle in said for needle in needles), f"{key} still names the participant"
    for path in (p for p in root.rglob("*") if p.is_file()):
        said = str(path) + ("" if path.suffix == ".npy" else text_of(path.read_bytes()))
        assert not any(needle in said for needle in needles), f"{path} still names the participant"
    index = pd.read_parquet(root / "prep" / "prepared" / "windows.parquet")
    assert window_rows(root / "prep" / "prepared") == len(index)
    # Everyone else is still there, and every table still reads as its stage wrote it.
    assert not report.removed_files
    kept = recording_table.read(root / "label" / "labelled", "label")
    assert len(kept) == len(labelled_before) - len(set(labelled_before["recording_id"]) & recordings)
    assert set(recording_table.read(root / "ingest" / "table", "ingest")["participant_id"]) == set(
        labelled_before["participant_id"]
    ) - {pseudonym}
    if who == "dataset":
        assert len(index) < windows_before, "the participant's windows are gone from the window file"
        assert report.flagged_versions == [version] and report.runs == [RUN.name]
        assert not any_store.list(layout.run_work(RUN.run_id)), "the run's working data (its windows) is gone"
        assert Registry(any_store).erasures(version)[0]["erasure"] == report.erasure_id
        assert any("trained on data erased" in reason for reason in monitor(Registry(any_store)).reasons)
        # Ingesting the same folder again brings none of it back.
        again, ingested = ingest([str(cohort)], any_store, KEY, progress=lambda _: None)
        assert not set(again["recording_id"]) & recordings and ingested.erased == len(recordings)
        assert pseudonym not in set(again["participant_id"])
    else:
        assert ingest(["telemetry"], any_store, KEY, progress=lambda _: None)[0].empty
    (act,) = [a for a in Lineage(any_store).audit_trail() if a["action"] == "erase"]
    assert act["actor"]["by"] == "Data Protection Officer" and act["reason"] == "consent withdrawn"
    assert act["evidence"]["recordings"] == len(recordings) and pseudonym not in str(act)


def test_erasing_someone_never_ingested_is_refused_and_changes_nothing(governed, cohort, store, tmp_path):
    root = tmp_path / "root"
    copy_of(governed, store, root)
    before = {key: store.get(key) for key in store.list()}
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    with pytest.raises(InputError, match="nothing in .* belongs to participant 'nobody'"):
        erase(store, cohort.name, "nobody", KEY, PERSON, "request", root)
    assert {key: store.get(key) for key in store.list()} == before
    assert all((copy / p.relative_to(root)).read_bytes() == p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_an_erasure_that_stops_half_way_can_be_run_again(governed, cohort, store, tmp_path, monkeypatch):
    import auscult.erasure

    root = tmp_path / "root"
    _, prepared = copy_of(governed, store, root)
    pseudonym = prepared["participant_id"].iloc[0]
    with open(cohort / synth.METADATA_FILE, newline="") as handle:
        person = next(r["id"] for r in csv.DictReader(handle) if participant_id(cohort.name, r["id"], KEY) == pseudonym)

    def outage(*_):
        raise OSError("the store went away")

    with monkeypatch.context() as patched:
        patched.setattr(auscult.erasure, "_scrub_pipeline_root", outage)
        with pytest.raises(OSError):
            erase(store, cohort.name, person, KEY, PERSON, "consent withdrawn", root)
    # Meanwhile nothing of theirs can be ingested again, and the rerun finds every recording.
    assert ingest([str(cohort)], store, KEY, progress=lambda _: None)[1].erased > 0
    report = erase(store, cohort.name, person, KEY, PERSON, "consent withdrawn", root)
    recordings = set(prepared.loc[prepared["participant_id"] == pseudonym, "recording_id"])
    assert not recordings & set(recording_table.read(root / "ingest" / "table", "ingest")["recording_id"])
    assert report.recordings >= len(recordings)
    assert pseudonym not in set(recording_table.read(root / "label" / "labelled", "label")["participant_id"])
    with pytest.raises(InputError, match=f"was erased at .* \\(erasure {report.erasure_id}\\)"):
        erase(store, cohort.name, person, KEY, PERSON, "asked twice", root)
