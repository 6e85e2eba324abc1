"""Incremental ingest: a run reads only what is new. Reads are counted where they happen (inotify for a folder,
whatever process opens a file; the store's get for an object store), not from what ingest says it did."""

import csv
import hashlib
import io
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from auscult import audio, layout, synth
from auscult.erasure import erase
from auscult.errors import InputError
from auscult.lineage import Lineage
from auscult.pseudonym import participant_id, pseudonymise, telemetry_participant
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.ingest import TELEMETRY_LOOKBACK_DAYS, ingest, upload
from auscult.store import S3Store, open_store
from tests.auscult.stages.test_ingest import put_audio, tone
from tests.conftest import KEY
from tests.file_opens import FileOpens

QUIET = {"progress": lambda _: None}
PERSON = {"user": "dpo", "host": "office", "by": "Data Protection Officer"}


def copy_of(cohort: Path, tmp_path: Path) -> Path:
    """The session's cohort, copied so that a test can change it (same folder name: the same source name)."""
    folder = tmp_path / "sources" / cohort.name
    shutil.copytree(cohort, folder)
    return folder


def recordings(paths: list[str]) -> list[str]:
    return sorted(path for path in paths if Path(path).suffix.lstrip(".") in audio.FORMATS)


def gets(monkeypatch, store_class: type) -> list[str]:
    """Every object ``store_class`` reads from now on, as a URI."""
    got: list[str] = []
    original = store_class.get

    def get(self, key: str) -> bytes:
        got.append(self.uri(key))
        return original(self, key)

    monkeypatch.setattr(store_class, "get", get)
    return got


def test_a_second_ingest_of_a_folder_reads_no_recording_again(cohort, store, tmp_path):
    folder = copy_of(cohort, tmp_path)
    with FileOpens(folder) as opens:
        first, report = ingest([str(folder)], store, KEY, **QUIET)
        assert len(recordings(opens.opened())) == report.files_read == 96 and report.files_known == 0
        second, again = ingest([str(folder)], store, KEY, **QUIET)
        # The metadata file is small and read every time, so what it says is current; no recording is opened.
        assert opens.opened() == [synth.METADATA_FILE]
        pd.testing.assert_frame_equal(first, second)
        assert again.files_read == 0 and again.files_known == 96 and again.new_objects == 0
        assert (again.duplicates, again.missing, again.refused) == (report.duplicates, report.missing, report.refused)

        # A file touched (same bytes), one rewritten with bytes of the same size and its modification time set
        # back, one added, one removed: the first three are read again, nothing else.
        files = sorted(p for p in folder.glob(f"{synth.DATE_FOLDER}/*/*") if p.stat().st_size > 100)
        touched, rewritten, gone = files[0], files[1], files[2]
        os.utime(touched, ns=(time.time_ns(), time.time_ns()))
        before = rewritten.stat()
        data = bytearray(rewritten.read_bytes())
        data[-1] ^= 0xFF
        rewritten.write_bytes(bytes(data))
        os.utime(rewritten, ns=(before.st_atime_ns, before.st_mtime_ns))
        added = gone.parent / f"cough-again{gone.suffix}"
        added.write_bytes(tone(0.42))
        gone.unlink()
        opens.opened()
        third, later = ingest([str(folder)], store, KEY, **QUIET)
        relative = [p.relative_to(folder).as_posix() for p in (touched, rewritten, added)]
        assert recordings(opens.opened()) == sorted(relative)
        assert later.files_read == 3 and later.files_known == 93
    by_path = third.set_index("original_path")["recording_id"]
    assert by_path[str(touched)] == first.set_index("original_path")["recording_id"][str(touched)]
    assert by_path[str(rewritten)] not in set(first["recording_id"]), "changed bytes: a new recording"
    assert str(added) in by_path and str(gone) not in by_path


def test_a_second_ingest_of_a_store_prefix_reads_no_recording_again(cohort, store, tmp_path, s3_server, monkeypatch):
    folder = copy_of(cohort, tmp_path)
    source = upload(folder, f"s3://sources-{uuid.uuid4().hex[:10]}/datasets", **QUIET).source
    got = gets(monkeypatch, S3Store)  # the lake is a folder store: every S3 read is a source read
    first, _ = ingest([source], store, KEY, **QUIET)
    assert len(recordings(got)) == len(first) == 96
    got.clear()
    second, again = ingest([source], store, KEY, **QUIET)
    assert got == [f"{source}/{synth.METADATA_FILE}"]
    pd.testing.assert_frame_equal(first, second)
    # An object written again (a new ETag) is read again; the others are not.
    key = next(k for k in open_store(source).list(synth.DATE_FOLDER) if k.endswith(".wav"))
    open_store(source).put(key, tone(0.42))
    got.clear()
    third, _ = ingest([source], store, KEY, **QUIET)
    assert recordings(got) == [f"{source}/{key}"]
    assert f"{source}/{key}" in set(third["original_path"]) and len(third) == len(first)


def test_uploads_are_read_once_and_what_was_refused_is_said_again(any_store, monkeypatch):
    uploads = {
        "2026/12/01/good.wav": tone(0.1),
        "2026/12/01/good.json": b'{"participant": "app-7", "label": "positive", "x": 1}',
        "2026/12/01/broken.wav": tone(0.2),
        "2026/12/01/broken.json": b"{not json",
        "2026/12/01/in-flight.wav": tone(0.3),
    }
    for key, data in uploads.items():
        any_store.put(layout.UPLOADS + key, data)
    got = gets(monkeypatch, type(any_store))
    first, report = ingest(["uploads"], any_store, KEY, **QUIET)
    assert sorted(k.rsplit("/", 1)[1] for k in got if "/uploads/" in k) == ["broken.json", "good.json", "good.wav"]
    got.clear()
    second, again = ingest(["uploads"], any_store, KEY, **QUIET)
    assert not [k for k in got if "/uploads/" in k], "neither recordings nor sidecars are read again"
    pd.testing.assert_frame_equal(first, second)
    assert (again.refused, again.metadata_notes) == (report.refused, report.metadata_notes) and len(report.refused) == 2
    # The sidecar of the upload that was under way comes: that upload is read, and only it.
    any_store.put(f"{layout.UPLOADS}2026/12/01/in-flight.json", b'{"participant": "app-8"}')
    got.clear()
    third, later = ingest(["uploads"], any_store, KEY, **QUIET)
    assert sorted(k.rsplit("/", 1)[1] for k in got if "/uploads/" in k) == ["in-flight.json", "in-flight.wav"]
    assert len(third) == 2 and len(later.refused) == 1 and later.files_known == 1


def test_an_erased_participant_stays_out_and_the_index_keeps_nothing_of_them(cohort, store, tmp_path):
    folder = copy_of(cohort, tmp_path)
    first, _ = ingest([str(folder)], store, KEY, **QUIET)
    Lineage(store).note_origins(first.to_dict("records"))
    with open(folder / synth.METADATA_FILE, newline="") as handle:
        person = next(csv.DictReader(handle))["id"]
    pseudonym = participant_id(folder.name, person, KEY)
    theirs = set(first.loc[first["participant_id"] == pseudonym, "recording_id"])
    assert theirs

    assert not any(needle in index_of(store) for needle in (person, pseudonym)), "keyed names and pseudonyms only"
    erase(store, folder.name, person, KEY, PERSON, "consent withdrawn")
    assert not any(needle in index_of(store) for needle in theirs | {pseudonym}), "erasure edits the index too"
    with FileOpens(folder) as opens:
        again, report = ingest([str(folder)], store, KEY, **QUIET)
        # Only the erased participant's files are read: the index holds nothing of them, and keeps nothing now.
        assert {Path(p).parent.name for p in recordings(opens.opened())} == {person}
    assert not theirs & set(again["recording_id"]) and report.erased == len(theirs)
    assert not any(needle in index_of(store) for needle in theirs | {pseudonym})
    assert len(again) == len(first) - len(theirs)


def index_of(store) -> str:
    """What the store's ingest indices say, as text."""
    keys = store.list(layout.INGEST_INDEX)
    return "".join(key + pd.read_parquet(io.BytesIO(store.get(key))).to_csv() for key in keys)


def test_an_erased_telemetry_participant_leaves_nothing_in_the_index(store, tmp_path):
    import numpy as np

    wave = 0.1 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    tag = telemetry_participant("app-user-9", KEY)
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        writer.record("req-1", "v1", wave, [0.3, 0.7], audio.input_stats(wave), {"participant": tag})
        writer.record("req-2", "v1", wave * 2, [0.6, 0.4], audio.input_stats(wave), {})
        writer.feedback("req-1", "positive")
    first, _ = ingest(["telemetry"], store, KEY, **QUIET)
    Lineage(store).note_origins(first.to_dict("records"))
    theirs = set(first.loc[first["participant_id"] == tag, "recording_id"])
    assert theirs and tag in index_of(store)
    erase(store, "telemetry", "app-user-9", KEY, PERSON, "consent withdrawn")
    assert not any(needle in index_of(store) for needle in theirs | {tag})
    again, _ = ingest(["telemetry"], store, KEY, **QUIET)
    assert list(again["participant_id"]) == [pseudonymise("telemetry:req-2", KEY)]
    assert not any(needle in index_of(store) for needle in theirs | {tag})


def put_request(store, request_id: str, at: datetime, data: bytes, **tags) -> None:
    record = {"request_id": request_id, "model_version": "v1", "stats": {}, "tags": tags}
    store.put_json(layout.telemetry_record(request_id, at), {**record, "audio_key": put_audio(store, data)})


def audio_uri(store, data: bytes) -> str:
    return store.uri(layout.telemetry_audio(hashlib.sha256(data).hexdigest()))


def put_label(store, request_id: str, truth: str, at: datetime) -> None:
    store.put_json(layout.telemetry_feedback(request_id, at), {"request_id": request_id, "truth": truth})


def test_telemetry_is_read_from_a_watermark_and_late_labels_are_seen(any_store, monkeypatch):
    jan, feb, mar = (datetime(2026, month, 1, 12, tzinfo=UTC) for month in (1, 2, 3))
    for number, at in enumerate((jan, jan, feb)):
        put_request(any_store, f"r{number}", at, tone(0.1 + number / 10))
    put_label(any_store, "r0", "positive", jan)
    any_store.put(layout.telemetry_record("junk", jan), b"not json")
    first, report = ingest(["telemetry"], any_store, KEY, **QUIET)
    assert sorted(first["raw_label"].fillna("none")) == ["none", "none", "positive"]

    # Later: a new request, a late label for an old request, a correction, and a label before its request.
    put_request(any_store, "r3", mar, tone(0.4))
    put_label(any_store, "r1", "negative", mar)
    late = mar + timedelta(hours=1)
    put_label(any_store, "r0", "negative", late)
    put_label(any_store, "r9", "positive", mar)
    listed: list[tuple[str, str, list[str]]] = []
    listing = type(any_store).listing

    def spied(self, prefix: str = "", start_after: str = ""):
        found = listing(self, prefix, start_after)
        listed.append((prefix, start_after, [f.key for f in found]))
        return found

    monkeypatch.setattr(type(any_store), "listing", spied)
    got = gets(monkeypatch, type(any_store))
    second, again = ingest(["telemetry"], any_store, KEY, **QUIET)
    # Listed from the watermark (February, the newest day read, less the lookback): January is not even listed.
    since = feb.date() - timedelta(days=TELEMETRY_LOOKBACK_DAYS)
    (records,) = [(after, keys) for prefix, after, keys in listed if prefix == layout.TELEMETRY_RECORDS]
    assert records[0] == layout.telemetry_from(layout.TELEMETRY_RECORDS, since)
    assert not [key for key in records[1] if "/2026/01/" in key]
    # Read: the new record, its audio and the new labels; nothing read before.
    read = sorted(uri.rsplit("/", 1)[1] for uri in got if "/telemetry/" in uri)
    labelled = (("r0", late), ("r1", mar), ("r9", mar))
    new_labels = [layout.telemetry_feedback(request, at).rsplit("/", 1)[1] for request, at in labelled]
    assert [name for name in read if not name.endswith(".wav")] == sorted([*new_labels, "r3.json"])
    assert [name for name in read if name.endswith(".wav")] == [audio_uri(any_store, tone(0.4)).rsplit("/", 1)[1]]
    assert again.files_read == 1 and again.files_known == 3
    assert again.refused == report.refused and "junk" in again.refused[0], "a refused record is still reported"
    request_of = {audio_uri(any_store, tone(0.1 + n / 10)): f"r{n}" for n in range(3)}
    request_of[audio_uri(any_store, tone(0.4))] = "r3"
    by_request = dict(zip(second["original_path"].map(request_of), second["raw_label"].fillna("none"), strict=True))
    assert by_request == {
        "r0": "negative",  # the newer label wins
        "r1": "negative",  # a late label for a request read before
        "r2": "none",
        "r3": "none",
    }
    # Everything read from scratch says the same.
    full, _ = ingest(["telemetry"], any_store, KEY, full=True, **QUIET)
    pd.testing.assert_frame_equal(second, full)
    # The label that came before its request is kept for it.
    put_request(any_store, "r9", mar + timedelta(days=1), tone(0.9))
    third, _ = ingest(["telemetry"], any_store, KEY, **QUIET)
    assert third.set_index("original_path")["raw_label"][audio_uri(any_store, tone(0.9))] == "positive"


def test_a_telemetry_record_that_lands_late_within_the_lookback_is_read(store):
    """A record spooled through a store outage lands after later ones were ingested: it is filed by the day it was
    received, before the watermark, and still read while that day is within the lookback."""
    at = datetime(2026, 3, 10, tzinfo=UTC)
    put_request(store, "early", at, tone(0.1))
    ingest(["telemetry"], store, KEY, **QUIET)
    put_request(store, "spooled", at - timedelta(days=2), tone(0.2))
    frame, report = ingest(["telemetry"], store, KEY, **QUIET)
    assert len(frame) == 2 and report.files_read == 1


def test_a_failed_run_writes_no_index(cohort, store, tmp_path):
    folder = copy_of(cohort, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        ingest([str(folder), str(tmp_path / "no-such-source")], store, KEY, **QUIET)
    assert not store.list(layout.INGEST_INDEX)


def test_telemetry_written_by_the_server_reads_back_incrementally(store, tmp_path):
    import numpy as np

    wave = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        writer.record("req-1", "v1", wave, [0.3, 0.7], audio.input_stats(wave), {})
    first, _ = ingest(["telemetry"], store, KEY, **QUIET)
    with TelemetryWriter(store, tmp_path / "spool") as writer:
        writer.feedback("req-1", "positive")
        writer.record("req-2", "v1", wave * 2, [0.6, 0.4], audio.input_stats(wave), {})
    second, report = ingest(["telemetry"], store, KEY, **QUIET)
    assert report.files_read == 1 and sorted(second["raw_label"].fillna("none")) == ["none", "positive"]


def test_a_run_under_another_key_learns_nothing_from_the_index(store):
    """An untagged request's participant is pseudonymised with the run's key: another key reads afresh."""
    put_request(store, "untagged", datetime(2026, 3, 1, tzinfo=UTC), tone(0.3))
    first, _ = ingest(["telemetry"], store, KEY, **QUIET)
    other, report = ingest(["telemetry"], store, b"another-key", **QUIET)
    assert report.files_read == 1 and report.files_known == 0
    assert list(other["participant_id"]) == [pseudonymise("telemetry:untagged", b"another-key")]
    assert list(first["participant_id"]) == [pseudonymise("telemetry:untagged", KEY)]
    assert len(store.list(layout.INGEST_INDEX)) == 2
