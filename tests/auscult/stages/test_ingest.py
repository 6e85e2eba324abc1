import json

import numpy as np
import pytest

from auscult import audio, layout
from auscult.errors import InputError
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.ingest import age_band, ingest, parse_source, pseudonymise
from tests.conftest import KEY

QUIET = {"progress": lambda _: None}


def test_ingesting_twice_adds_nothing(cohort, store):
    first, report = ingest([str(cohort)], store, KEY, **QUIET)
    objects = store.list(layout.LAKE)
    second, again = ingest([str(cohort)], store, KEY, **QUIET)
    assert report.rows == len(first) == 96 and report.new_objects == len(objects)
    assert again.new_objects == 0 and store.list(layout.LAKE) == objects
    assert first["recording_id"].tolist() == second["recording_id"].tolist()


def test_rows_carry_metadata_and_lake_uris(cohort, store):
    frame, _ = ingest([str(cohort)], store, KEY, **QUIET)
    row = frame.iloc[0]
    assert row["origin"] == "dataset" and row["source"] == cohort.name
    assert row["uri"].startswith("file://") and row["recording_id"] in row["uri"]
    assert set(frame["sound_type"]) == {"cough", "breathing"}
    assert frame["device"].notna().all() and frame["age_band"].notna().all()


def test_participants_are_pseudonymised_with_the_key(cohort, store):
    frame, _ = ingest([str(cohort)], store, KEY, **QUIET)
    other, _ = ingest([str(cohort)], store, b"another-key", **QUIET)
    raw_ids = {p.name for p in cohort.glob("*/*") if p.is_dir()}
    assert not raw_ids & set(frame["participant_id"])
    assert not set(frame["participant_id"]) & set(other["participant_id"])
    assert frame["participant_id"].nunique() == len(raw_ids)


def test_covid19_cough_layout(tmp_path, store):
    root = tmp_path / "covid19-cough"
    (root / "raw").mkdir(parents=True)
    tone = 0.2 * np.sin(np.arange(16000) / 5.0)
    for name in ("a.wav", "b.wav"):
        (root / "raw" / name).write_bytes(audio.encode_wav(tone * (1 + (name == "b.wav"))))
    entries = [
        {"filename": "a.wav", "covid19": True, "source": "telegram"},
        {"filename": "gone.wav", "covid19": False, "source": "call-center"},
    ]
    (root / "metadata.json").write_text(json.dumps(entries))
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert parse_source(str(root)).kind == "covid19-cough"
    assert sorted(frame["raw_label"].fillna("none")) == ["none", "true"]
    assert report.missing == ["covid19-cough: gone.wav is in metadata.json but not in raw/"]


def test_manifest_reports_missing_files_and_reads_the_rest(tmp_path, store):
    (tmp_path / "x.wav").write_bytes(audio.encode_wav(np.full(8000, 0.1, dtype=np.float32)))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,participant,sex\nx.wav,positive,p1,female\nmissing.wav,negative,p2,male\n")
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert len(frame) == 1 and frame.loc[0, "raw_label"] == "positive" and frame.loc[0, "sex"] == "female"
    assert "missing.wav" in report.missing[0] and "line 3" in report.missing[0]


def test_telemetry_source_joins_feedback(store):
    wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    with TelemetryWriter(store) as writer:
        writer.record("req-1", "v1", wave, [0.3, 0.7], audio.input_stats(wave), {"participant": "app-7"})
        writer.record("req-2", "v1", wave * 2, [0.6, 0.4], audio.input_stats(wave), {})
        writer.feedback("req-1", "positive")
    frame, _ = ingest(["telemetry"], store, KEY, **QUIET)
    assert len(frame) == 2 and set(frame["origin"]) == {"telemetry"}
    assert sorted(frame["raw_label"].fillna("none")) == ["none", "positive"]
    assert pseudonymise("telemetry:app-7", KEY) in set(frame["participant_id"])


def test_unknown_source_is_a_clear_error(tmp_path, store):
    with pytest.raises(InputError, match="cannot recognise source"):
        ingest([str(tmp_path)], store, KEY, **QUIET)
    with pytest.raises(InputError, match="does not exist"):
        ingest([str(tmp_path / "nowhere")], store, KEY, **QUIET)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe\x00garbage\x81\x82", "cannot read"),
        (b"file,label\na.wav,positive\n", "lacks the column"),
        (b'path,label\n"a.wav,positive\n', "as CSV"),
    ],
    ids=["not-text", "no-path-column", "broken-quoting"],
)
def test_an_unreadable_manifest_is_an_input_error_naming_it(tmp_path, store, content, problem):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content)
    with pytest.raises(InputError, match=problem) as raised:
        ingest([str(manifest)], store, KEY, **QUIET)
    assert str(manifest) in str(raised.value)


def test_unreadable_dataset_metadata_is_an_input_error(tmp_path, store):
    (tmp_path / "raw").mkdir()
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(InputError, match="metadata.json"):
        ingest([str(tmp_path)], store, KEY, **QUIET)


def test_age_bands():
    assert [age_band(a) for a in (None, 10, 18, 25, 34, 69, 70)] == [
        None,
        "0-17",
        "18-19",
        "20-29",
        "30-39",
        "60-69",
        "70+",
    ]


def test_byte_identical_files_are_kept_once_and_named(tmp_path, store):
    data = audio.encode_wav(np.full(8000, 0.1, dtype=np.float32))
    (tmp_path / "one.wav").write_bytes(data)
    (tmp_path / "copy.wav").write_bytes(data)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,participant\none.wav,positive,p1\ncopy.wav,positive,p1\n")
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert len(frame) == 1
    assert report.duplicates == [f"{tmp_path / 'copy.wav'} is byte-identical to {tmp_path / 'one.wav'}: kept once"]


def test_a_manifest_row_that_is_not_audio_is_reported_not_copied(tmp_path, store):
    (tmp_path / "notes.txt").write_text("not audio")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\nnotes.txt,positive\n")
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert frame.empty and not store.list(layout.LAKE)
    assert report.missing == ["manifest.csv line 2: 'notes.txt' is not a wav/flac/ogg/mp3 file"]
