import csv

import numpy as np

from auscult import audio, synth


def test_same_seed_gives_the_same_files(tmp_path):
    spec = synth.CohortSpec(participants=4, seed=7, defect_rate=0.0)
    synth.generate(tmp_path / "a", spec)
    synth.generate(tmp_path / "b", spec)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert {name.suffix for name in files_a} >= {".ogg", ".wav", ".flac"}
    for name in files_a:  # Ogg included: its random stream serial is replaced by a fixed one
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        if name.suffix == ".ogg":
            assert audio.decode((tmp_path / "a" / name).read_bytes()).samples.size


def test_layout_metadata_and_counts(tmp_path):
    counts = synth.generate(tmp_path, synth.CohortSpec(participants=10, seed=1))
    with open(tmp_path / synth.METADATA_FILE) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == counts["participants"] == 10
    assert set(rows[0]) == {"id", "covid_status", "a", "g", "device"}
    assert counts["files"] == 40
    assert counts["positive"] + counts["negative"] + counts["unusable_label"] == 10
    folders = list((tmp_path / synth.DATE_FOLDER).iterdir())
    assert sorted(p.name for p in folders) == sorted(r["id"] for r in rows)


def test_shifted_cohort_uses_the_new_devices(tmp_path):
    synth.generate(tmp_path, synth.CohortSpec(participants=12, seed=2, shifted=True))
    with open(tmp_path / synth.METADATA_FILE) as handle:
        devices = {row["device"] for row in csv.DictReader(handle)}
    assert devices <= {d.name for d in synth.SHIFTED_DEVICES}
    assert "budget-phone" in devices


def test_a_confound_ties_the_channel_to_the_label(tmp_path):
    synth.generate(tmp_path, synth.CohortSpec(participants=60, seed=4, confound=0.8, unusable_label_rate=0.0))
    with open(tmp_path / synth.METADATA_FILE) as handle:
        rows = list(csv.DictReader(handle))
    assert {row["device"] for row in rows} == {d.name for d in synth.CHANNELS}
    call = np.array([row["device"] == "call-line" for row in rows])
    positive = np.array([row["covid_status"].startswith("positive") for row in rows])
    assert call[positive].mean() > 0.75 and call[~positive].mean() < 0.25
    recording = next((tmp_path / synth.DATE_FOLDER / rows[int(np.argmax(call))]["id"]).iterdir())
    assert audio.decode(recording.read_bytes()).sample_rate == 8_000
