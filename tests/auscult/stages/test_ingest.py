import csv
import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auscult import audio, layout, table
from auscult.audio import FORMATS
from auscult.errors import InputError
from auscult.pseudonym import pseudonymise, telemetry_participant
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.ingest import age_band, ingest, parse_source
from auscult.stages.label import REVIEW, label, review_queue
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
    assert row["origin"] == "synthetic" and row["source"] == cohort.name, "auscult generate's marker says so"
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
    assert report.missing == ["covid19-cough: 'gone.wav' is in metadata.json but not in raw/"]


def test_manifest_reports_missing_files_and_reads_the_rest(tmp_path, store):
    (tmp_path / "x.wav").write_bytes(audio.encode_wav(np.full(8000, 0.1, dtype=np.float32)))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,participant,sex\nx.wav,positive,p1,female\nmissing.wav,negative,p2,male\n")
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert len(frame) == 1 and frame.loc[0, "raw_label"] == "positive" and frame.loc[0, "sex"] == "female"
    assert "missing.wav" in report.missing[0] and "line 3" in report.missing[0]


def test_telemetry_source_joins_feedback(tmp_path, store):
    wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    # Serving stores the participant tag already pseudonymised; a request without one is its own participant.
    tag = telemetry_participant("app-7", KEY)
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        writer.record("req-1", "v1", wave, [0.3, 0.7], audio.input_stats(wave), {"participant": tag})
        writer.record("req-2", "v1", wave * 2, [0.6, 0.4], audio.input_stats(wave), {})
        writer.feedback("req-1", "positive")
    frame, _ = ingest(["telemetry"], store, KEY, **QUIET)
    assert len(frame) == 2 and set(frame["origin"]) == {"telemetry"}
    assert sorted(frame["raw_label"].fillna("none")) == ["none", "positive"]
    assert set(frame["participant_id"]) == {tag, pseudonymise("telemetry:req-2", KEY)}
    assert tag == pseudonymise("telemetry:app-7", KEY)  # the id ingest gave a raw tag before serving hashed it


def test_unknown_source_is_a_clear_error(tmp_path, store):
    with pytest.raises(InputError, match="cannot recognise source"):
        ingest([str(tmp_path)], store, KEY, **QUIET)
    with pytest.raises(InputError, match="does not exist"):
        ingest([str(tmp_path / "nowhere")], store, KEY, **QUIET)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe\x00garbage\x81\x82", "cannot read"),
        (b"file,label\na.wav,positive\n", r"lacks the column\(s\) path \(its header has: \['file', 'label'\]\)"),
        (b'path,label\n"a.wav,positive\n', "as CSV"),
        (
            b"\xef\xbb\xbffile,label\na.wav,positive\n",
            r"lacks the column\(s\) path \(its header has: \['file', 'label'\]\)",
        ),
        ("path,label,sex\na.wav,positive,f\xe9minin\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 on line 2\)"),
    ],
    ids=["not-text", "no-path-column", "broken-quoting", "bom-and-no-path-column", "latin-1"],
)
def test_an_unreadable_manifest_is_an_input_error_naming_it(tmp_path, store, content, problem):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content)
    with pytest.raises(InputError, match=problem) as raised:
        ingest([str(manifest)], store, KEY, **QUIET)
    assert str(manifest) in str(raised.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "as JSON: Expecting property name"),
        ("[" * 100_000 + "]" * 100_000, "as JSON: maximum recursion depth"),
        ('{"filename": "a.wav"}', "is not a list of entries: its top level is {'filename': 'a.wav'}"),
        ("[1]", "entry 0 is not an object with a text 'filename': 1"),
        ('[{"filename": "a.wav"}, {"filename": 3}]', "entry 1 is not an object with a text 'filename'"),
    ],
    ids=["not-json", "deeply-nested", "not-a-list", "not-an-object", "filename-not-text"],
)
def test_a_broken_metadata_json_is_an_input_error_naming_it(tmp_path, store, content, problem):
    (tmp_path / "raw").mkdir()
    (tmp_path / "metadata.json").write_text(content)
    with pytest.raises(InputError, match=problem) as raised:
        ingest([str(tmp_path)], store, KEY, **QUIET)
    assert str((tmp_path / "metadata.json").resolve()) in str(raised.value)


def test_a_coswara_folder_without_an_id_column_is_an_input_error_naming_it(tmp_path, store):
    (tmp_path / "combined_data.csv").write_text("ident,covid_status\np1,positive\n")
    with pytest.raises(
        InputError, match=r"lacks the column\(s\) id \(its header has: \['ident', 'covid_status'\]\)"
    ) as raised:
        ingest([str(tmp_path)], store, KEY, **QUIET)
    assert str((tmp_path / "combined_data.csv").resolve()) in str(raised.value)


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


def test_a_manifest_row_that_is_not_audio_is_refused_not_copied(tmp_path, store):
    (tmp_path / "notes.txt").write_text("not audio")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\nnotes.txt,positive\n")
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert frame.empty and not store.list(layout.LAKE)
    assert report.refused == [f"manifest.csv line 2: '{tmp_path / 'notes.txt'}' is not a {'/'.join(FORMATS)} file"]


# Hostile input: a corpus generated here, each case with its expected outcome. Nothing a source names outside its
# own folder may be read, and nothing may hang or crash ingest.


def tone(level: float) -> bytes:
    """A short WAV whose bytes differ with ``level``."""
    return audio.encode_wav(np.full(800, level, dtype=np.float32))


SECRET = tone(0.77)  # the bytes of a file outside every source: they must never reach the store


def outside_file(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside" / "secret.wav").write_bytes(SECRET)
    return tmp_path / "outside" / "secret.wav"


def stored_bytes(store) -> bytes:
    """Everything the store holds, end to end."""
    return b"".join(path.read_bytes() for path in store.path.rglob("*") if path.is_file())


def bounded(call, timeout_s: float = 60.0):
    """``call()``, or a failure instead of a hang: opening a FIFO blocks until a writer comes."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still running after {timeout_s} s: something blocked (a FIFO opened?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_manifest_paths_outside_its_folder_are_refused_and_never_read(tmp_path, store):
    secret = outside_file(tmp_path)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "inside.wav").write_bytes(tone(0.1))
    (folder / "link.wav").symlink_to(secret)
    manifest = folder / "m.csv"
    rows = ["inside.wav", str(secret), "../outside/secret.wav", "link.wav", "/etc/passwd"]
    manifest.write_text("path,label\n" + "".join(f"{row},positive\n" for row in rows))
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert frame["original_path"].tolist() == [str((folder / "inside.wav").resolve())]
    assert [problem.split(":")[0] for problem in report.refused] == [f"m.csv line {n}" for n in (3, 4, 5, 6)]
    assert all(f"resolves to '{secret.resolve()}', outside" in problem for problem in report.refused[:3])
    assert "resolves to '/etc/passwd', outside" in report.refused[3]
    assert SECRET not in stored_bytes(store)


def test_coswara_links_out_of_the_dataset_and_undecodable_names_are_refused(tmp_path, store):
    secret = outside_file(tmp_path)
    root = tmp_path / "coswara"
    person = root / "20260101" / "p1"
    person.mkdir(parents=True)
    (root / "combined_data.csv").write_text(
        "id,covid_status,a,g,device\np1,positive,40,female,phone\np2,negative,50,,\n"
    )
    (person / "cough-heavy.wav").write_bytes(tone(0.1))
    (person / "cough-shallow.wav").symlink_to(secret)  # a file linked out
    (root / "20260101" / "p2").symlink_to(secret.parent, target_is_directory=True)  # a participant folder
    (root / "20260102").symlink_to(secret.parent, target_is_directory=True)  # a whole group
    with open(os.fsencode(person) + b"/breathing-\xff.wav", "wb") as handle:  # a name that is not UTF-8
        handle.write(tone(0.2))
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert frame["original_path"].tolist() == [str(person.resolve() / "cough-heavy.wav")]
    assert len(report.refused) == 4 and not report.missing  # p2's folder is there, refused
    refused = "\n".join(report.refused)
    assert "cough-shallow.wav' resolves to" in refused and "bytes that are not UTF-8" in refused
    assert "folder '" in refused and "p2' resolves to" in refused and "20260102' resolves to" in refused
    assert SECRET not in stored_bytes(store)


@pytest.mark.parametrize("linked", ["file", "raw folder"])
def test_covid19_cough_links_out_of_the_dataset_are_refused(tmp_path, store, linked):
    secret = outside_file(tmp_path)
    root = tmp_path / "covid19-cough"
    root.mkdir()
    if linked == "file":
        (root / "raw").mkdir()
        (root / "raw" / "a.wav").symlink_to(secret)
    else:
        (root / "raw").symlink_to(secret.parent, target_is_directory=True)
    (root / "metadata.json").write_text(json.dumps([{"filename": "a.wav", "covid19": True}]))
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert frame.empty and len(report.refused) == 1 and f"resolves to '{secret.parent.resolve()}" in report.refused[0]
    assert SECRET not in stored_bytes(store)


def test_metadata_linked_from_outside_the_dataset_is_an_input_error(tmp_path, store):
    (tmp_path / "outside.csv").write_text("id,covid_status\nsomeone,positive\n")
    root = tmp_path / "coswara"
    root.mkdir()
    (root / "combined_data.csv").symlink_to(tmp_path / "outside.csv")
    with pytest.raises(InputError, match=r"combined_data.csv: it resolves to .*outside.csv', outside"):
        ingest([str(root)], store, KEY, **QUIET)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("kind", ["manifest", "coswara", "covid19-cough"])
def test_fifos_and_folders_named_like_audio_are_refused_without_opening_them(tmp_path, store, kind):
    if kind == "manifest":
        folder, spec = tmp_path, tmp_path / "m.csv"
        spec.write_text("path,label\n" + "".join(f"cough-{s}.wav,positive\n" for s in ("heavy", "shallow", "deep")))
    elif kind == "coswara":
        folder, spec = tmp_path / "c" / "20260101" / "p1", tmp_path / "c"
        folder.mkdir(parents=True)
        (spec / "combined_data.csv").write_text("id,covid_status\np1,positive\n")
    else:
        folder, spec = tmp_path / "c" / "raw", tmp_path / "c"
        folder.mkdir(parents=True)
        (spec / "metadata.json").write_text("[]")
    (folder / "cough-heavy.wav").write_bytes(tone(0.1))
    os.mkfifo(folder / "cough-shallow.wav")  # opening it would wait for a writer that never comes
    (folder / "cough-deep.wav").mkdir()
    frame, report = bounded(lambda: ingest([str(spec)], store, KEY, **QUIET))
    assert frame["original_path"].tolist() == [str((folder / "cough-heavy.wav").resolve())]
    assert sorted(report.refused) == sorted(
        f"{'m.csv line ' + str(line) if kind == 'manifest' else 'c'}: '{(folder / name).resolve()}' is not a "
        "regular file (a folder, FIFO, device or socket)"
        for line, name in ((3, "cough-shallow.wav"), (4, "cough-deep.wav"))
    )


def test_implausible_ages_are_dropped_with_a_note_naming_row_and_column(tmp_path, store):
    ages = ["inf", "-inf", "nan", "-5", "1e9", "121", "forty", "45.5"]
    for index in range(len(ages)):
        (tmp_path / f"r{index}.wav").write_bytes(tone(0.01 * (index + 1)))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,age\n" + "".join(f"r{i}.wav,positive,{age}\n" for i, age in enumerate(ages)))
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert len(frame) == len(ages) and frame["age_band"].dropna().tolist() == ["40-49"]
    assert report.metadata_notes == [
        f"m.csv line {line}, column 'age': '{age}' is not an age in years from 0 to 120: dropped"
        for line, age in enumerate(ages[:-1], start=2)
    ]


def test_huge_values_and_control_characters_are_not_stored(tmp_path, store):
    (tmp_path / "x.wav").write_bytes(tone(0.1))
    manifest = tmp_path / "m.csv"
    limit = csv.field_size_limit()
    manifest.write_text(f'path,label,sex,device\nx.wav,positive,{"f" * 1_000_000},"ph\tone\u202e\x1b"\n')
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    assert pd.isna(frame.loc[0, "sex"]) and frame.loc[0, "device"] == "phone"
    assert report.metadata_notes == [
        "m.csv line 2, column 'sex': 1000000 characters, more than 200: dropped",
        "m.csv line 2, column 'device': control characters removed from 'ph\\tone\\u202e\\x1b'",
    ]
    assert csv.field_size_limit() == limit  # lifted for the file only


def test_a_manifest_saved_with_a_byte_order_mark_reads(tmp_path, store):
    (tmp_path / "x.wav").write_bytes(tone(0.1))
    (tmp_path / "m.csv").write_bytes("\ufeffpath,label\nx.wav,positive\n".encode())
    frame, report = ingest([str(tmp_path / "m.csv")], store, KEY, **QUIET)
    assert frame["raw_label"].tolist() == ["positive"] and not report.missing + report.refused


def test_identical_bytes_naming_different_participants_or_labels_go_to_review(tmp_path, store):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        (tmp_path / name).write_bytes(tone(0.1))
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,participant\na.wav,positive,p1\nb.wav,negative,p1\nc.wav,positive,p2\nd.wav,Positive,p1\n"
    )
    frame, report = ingest([str(manifest)], store, KEY, **QUIET)
    a, b, c, d = (tmp_path.resolve() / name for name in ("a.wav", "b.wav", "c.wav", "d.wav"))
    assert len(frame) == 1
    assert report.conflicts == [
        f"{a} (m.csv line 2) and {b} (m.csv line 3) are byte-identical but name different labels "
        "('positive' and 'negative')",
        f"{a} (m.csv line 2) and {c} (m.csv line 4) are byte-identical but name different participants",
    ]
    assert report.duplicates == [f"{d} is byte-identical to {a}: kept once"]  # same person, same label
    assert frame.loc[0, "conflict"] == "; ".join(report.conflicts)
    curated = frame.assign(**{**{column: pd.NA for column in table.CURATE_COLUMNS}, "status": table.OK})
    labelled = label(curated)
    assert labelled.loc[0, "label_status"] == REVIEW and pd.isna(labelled.loc[0, "label"])
    assert review_queue(labelled)["label_note"].tolist() == [frame.loc[0, "conflict"]]


def test_empty_files_are_duplicates_whoever_they_name(tmp_path, store):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "b.wav").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,label,participant\na.wav,positive,p1\nb.wav,negative,p2\n")
    frame, report = ingest([str(tmp_path / "m.csv")], store, KEY, **QUIET)
    assert len(frame) == 1 and len(report.duplicates) == 1 and not report.conflicts


def test_without_participant_ids_identical_bytes_are_compared_by_label_only(tmp_path, store):
    root = tmp_path / "covid19-cough"
    (root / "raw").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "c.wav"):  # each file its own participant: the dataset has no ids
        (root / "raw" / name).write_bytes(tone(0.1))
    entries = [{"filename": "a.wav", "covid19": True}, {"filename": "b.wav", "covid19": True}]
    (root / "metadata.json").write_text(json.dumps([*entries, {"filename": "c.wav", "covid19": False}]))
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    raw = root.resolve() / "raw"
    assert report.duplicates == [f"{raw / 'b.wav'} is byte-identical to {raw / 'a.wav'}: kept once"]
    assert report.conflicts == [
        f"{raw / 'a.wav'} and {raw / 'c.wav'} are byte-identical but name different labels ('true' and 'false')"
    ]


def put_audio(store, data: bytes) -> str:
    key = layout.telemetry_audio(hashlib.sha256(data).hexdigest())
    store.put(key, data)
    return key


def put_record(store, name: str, record: object) -> None:
    store.put_json(layout.telemetry_record(name, datetime(2026, 1, 1, tzinfo=UTC)), record)


def put_request(store, request_id: str, audio_key: str, **tags) -> None:
    record = {"request_id": request_id, "model_version": "v1", "stats": {}, "tags": tags, "audio_key": audio_key}
    put_record(store, request_id, record)


def test_hostile_telemetry_records_are_refused_or_cleaned_never_crash(store):
    tag = telemetry_participant("app-7", KEY)
    store.put("models/m/versions/1/model.onnx", SECRET)
    altered = put_audio(store, tone(0.3))
    store.put(altered, tone(0.4))
    put_request(store, "ok", put_audio(store, tone(0.1)), participant=tag, age="inf", sex="x" * 10_000, device=[1])
    put_request(store, "untagged", put_audio(store, tone(0.2)), age=1e308 * 10)  # JSON's Infinity
    put_request(store, "raw-tag", put_audio(store, tone(0.5)), participant="app-7")  # not pseudonymised
    put_request(store, "escape", "telemetry/audio/../../models/m/versions/1/model.onnx")
    put_request(store, "elsewhere", "models/m/versions/1/model.onnx")
    put_request(store, "altered", altered)
    put_request(store, "gone", layout.telemetry_audio("0" * 64))
    put_record(store, "a-list", [1, 2])
    put_record(store, "no-tags", {"request_id": "no-tags", "audio_key": altered})
    store.put(layout.telemetry_record("not-json", datetime(2026, 1, 1, tzinfo=UTC)), b"\x00 not json")
    store.put_json(layout.telemetry_feedback("fb", datetime(2026, 1, 2, tzinfo=UTC)), "positive")
    frame, report = ingest(["telemetry"], store, KEY, **QUIET)
    assert sorted(frame["participant_id"]) == sorted([tag, pseudonymise("telemetry:untagged", KEY)])
    assert frame[["age_band", "sex", "device"]].isna().all().all()
    noted = [note.split(", tag ")[1].split(":")[0] for note in report.metadata_notes]
    assert noted == ["'age'", "'sex'", "'device'", "'age'"]
    refused = "\n".join(report.refused)
    for name in ("raw-tag", "escape", "elsewhere", "altered", "a-list", "no-tags", "not-json", "/fb-"):
        assert name in refused, name
    assert len(report.refused) == 8 and len(report.missing) == 1 and "gone" in report.missing[0]
    assert "is not a pseudonymised id" in refused and "does not hash to its name" in refused
    assert all(store.get(key) != SECRET for key in store.list(layout.LAKE))


def test_a_folder_swapped_for_a_link_after_the_check_is_not_read_through(tmp_path, store, monkeypatch):
    """The race: a manifest names ``sub/a.wav`` and, between the check of its path and the open, another process
    swaps ``sub`` for a link out of the source. Here the swap happens deterministically right after the check."""
    from auscult.stages import ingest as stage

    secret = outside_file(tmp_path)
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "secret.wav").write_bytes(tone(0.1))  # the name the outside file has
    (folder / "m.csv").write_text("path,label\nsub/secret.wav,positive\n")
    checked = stage._locate

    def check_then_swap(path, root):
        real = checked(path, root)
        if path.suffix == ".wav":  # not when the manifest itself is checked
            (folder / "sub").rename(folder / "elsewhere")
            (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
        return real

    monkeypatch.setattr(stage, "_locate", check_then_swap)
    frame, report = ingest([str(folder / "m.csv")], store, KEY, **QUIET)
    assert frame.empty and SECRET not in stored_bytes(store)
    assert report.refused == [
        f"m.csv line 2: '{folder / 'sub' / 'secret.wav'}' changed after it was checked: a link now stands on its path"
    ]


def test_a_manifest_named_through_a_link_reads_from_the_folder_it_resolves_to(tmp_path, store):
    real = tmp_path / "data"
    real.mkdir()
    (real / "x.wav").write_bytes(tone(0.1))
    (real / "m.csv").write_text("path,label\nx.wav,positive\n")
    elsewhere = tmp_path / "links"
    elsewhere.mkdir()
    (elsewhere / "x.wav").write_bytes(tone(0.2))  # beside the link: not what the manifest names
    (elsewhere / "m.csv").symlink_to(real / "m.csv")
    frame, _ = ingest([str(elsewhere / "m.csv")], store, KEY, **QUIET)
    assert frame["original_path"].tolist() == [str((real / "x.wav").resolve())]


@pytest.mark.parametrize("layout_kind", ["manifest", "coswara"])
def test_a_header_naming_a_column_twice_is_an_input_error_naming_file_and_column(tmp_path, store, layout_kind):
    (tmp_path / "a.wav").write_bytes(tone(0.1))
    if layout_kind == "manifest":
        metadata, spec = tmp_path / "m.csv", tmp_path / "m.csv"
        metadata.write_text("path,label,path,,\na.wav,positive,b.wav,,\n")  # unnamed columns are no repeats
        column = "'path'"
    else:
        metadata, spec = tmp_path / "combined_data.csv", tmp_path
        metadata.write_text("id,covid_status,a,covid_status\np1,positive,30,negative\n")
        column = "'covid_status'"
    with pytest.raises(InputError, match=f"names the column\\(s\\) {column} more than once") as raised:
        ingest([str(spec)], store, KEY, **QUIET)
    assert str(metadata.resolve()) in str(raised.value)


def test_fields_beyond_the_header_are_dropped_with_a_note_naming_the_row(tmp_path, store):
    (tmp_path / "a.wav").write_bytes(tone(0.1))
    (tmp_path / "b.wav").write_bytes(tone(0.2))
    (tmp_path / "m.csv").write_text("path,label,participant\na.wav\nb.wav,positive,p2,extra1,extra2\n")
    frame, report = ingest([str(tmp_path / "m.csv")], store, KEY, **QUIET)
    assert len(frame) == 2 and frame["raw_label"].fillna("none").tolist() == ["none", "positive"]
    assert report.metadata_notes == [
        "m.csv line 3: 2 field(s) beyond the header's 3 columns: ignored (['extra1', 'extra2'])"
    ]


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return label(frame.assign(**{**{column: pd.NA for column in table.CURATE_COLUMNS}, "status": table.OK}))


def test_metadata_json_entries_for_one_file_that_differ_are_noted_and_a_label_dispute_goes_to_review(tmp_path, store):
    root = tmp_path / "covid19-cough"
    (root / "raw").mkdir(parents=True)
    for name, level in (("a.wav", 0.1), ("b.wav", 0.2), ("c.wav", 0.3)):
        (root / "raw" / name).write_bytes(tone(level))
    entries = [
        {"filename": "a.wav", "covid19": True, "source": "telegram"},
        {"filename": "b.wav", "covid19": False, "source": "telegram"},
        {"filename": "c.wav", "covid19": False},
        {"filename": "a.wav", "covid19": False, "source": "telegram"},  # another label
        {"filename": "b.wav", "covid19": False, "source": "call-center"},  # another device, the same label
        {"filename": "c.wav", "covid19": False},  # the same again: nothing to say
    ]
    (root / "metadata.json").write_text(json.dumps(entries))
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert report.metadata_notes == [
        "metadata.json entry 0 and metadata.json entry 3 both describe 'a.wav', differently (field 'covid19': True "
        "and False): metadata.json entry 0 is used, but the labels differ: its recordings go to review",
        "metadata.json entry 1 and metadata.json entry 4 both describe 'b.wav', differently (field 'source': "
        "'telegram' and 'call-center'): metadata.json entry 1 is used",
    ]
    by_name = {Path(row.original_path).name: row for row in frame.itertuples()}
    assert by_name["b.wav"].device == "telegram" and pd.isna(by_name["b.wav"].conflict)
    assert by_name["a.wav"].conflict == (
        f"{root.resolve() / 'raw' / 'a.wav'}: metadata.json entry 0 and metadata.json entry 3 give different labels "
        "('true' and 'false')"
    )
    statuses = labelled(frame).set_index(frame["original_path"].map(lambda p: Path(p).name))["label_status"]
    assert statuses.to_dict() == {"a.wav": REVIEW, "b.wav": "labelled", "c.wav": "labelled"}


def test_a_coswara_participant_with_two_rows_that_differ_is_noted_and_goes_to_review(tmp_path, store):
    root = tmp_path / "coswara"
    for person in ("p1", "p2"):
        (root / "20260101" / person).mkdir(parents=True)
        (root / "20260101" / person / "cough-heavy.wav").write_bytes(tone(0.1 if person == "p1" else 0.2))
    (root / "combined_data.csv").write_text(
        "id,covid_status,a,g\np1,positive,30,male\np2,negative,40,female\np1,negative,70,female\n"
    )
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert report.metadata_notes == [
        "combined_data.csv line 2 and combined_data.csv line 4 both describe 'p1', differently (column 'a': '30' "
        "and '70'; column 'g': 'male' and 'female'; column 'covid_status': 'positive' and 'negative'): "
        "combined_data.csv line 2 is used, but the labels differ: its recordings go to review"
    ]
    first = frame[frame["original_path"].str.contains("p1")].iloc[0]
    assert (first["age_band"], first["sex"], first["raw_label"]) == ("30-39", "male", "positive")
    assert "p1" not in first["conflict"].split(": ", 1)[1]  # the table holds no raw participant id
    assert labelled(frame)["label_status"].tolist() == [REVIEW, "labelled"]


def test_a_coswara_folder_that_is_a_link_to_nothing_is_refused_not_skipped(tmp_path, store):
    root = tmp_path / "coswara"
    (root / "20260101" / "p1").mkdir(parents=True)
    (root / "20260101" / "p1" / "cough-heavy.wav").write_bytes(tone(0.1))
    (root / "combined_data.csv").write_text("id,covid_status\np1,positive\n")
    (root / "20260102").symlink_to(tmp_path / "nowhere", target_is_directory=True)  # a whole group
    (root / "20260101" / "p2").symlink_to(root / "20260101" / "p2")  # a participant folder: a loop
    frame, report = ingest([str(root)], store, KEY, **QUIET)
    assert len(frame) == 1
    assert report.refused == [
        f"coswara: '{root / '20260102'}' is a link that leads nowhere ('{tmp_path / 'nowhere'}'): not read",
        f"coswara: '{root / '20260101' / 'p2'}' is a link that leads nowhere ('{root / '20260101' / 'p2'}'): not read",
    ]
