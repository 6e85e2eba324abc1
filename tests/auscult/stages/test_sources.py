"""Sources in an object store: datasets uploaded with `auscult upload`, and the app-uploads landing prefix, on a real
S3-compatible server (moto) on 127.0.0.1."""

import json
import uuid

import numpy as np
import pytest

from auscult import audio, layout
from auscult.errors import InputError
from auscult.stages.ingest import ingest, nothing_found, parse_source, upload
from auscult.store import open_store
from tests.conftest import KEY

QUIET = {"progress": lambda _: None}
# What a row says about a recording, wherever it was read from (not where it was read from).
CONTENT = ["recording_id", "participant_id", "source", "sound_type", "format", "age_band", "sex", "device", "raw_label"]


def tone(level: float) -> bytes:
    return audio.encode_wav(np.full(800, level, dtype=np.float32))


@pytest.fixture
def bucket(s3_server):
    return f"s3://sources-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def covid19_cough(tmp_path):
    """The covid19-cough layout in small, with what ingest must refuse: a link out and a file that is not audio."""
    root = tmp_path / "covid19-cough"
    (root / "raw").mkdir(parents=True)
    entries = []
    for index in range(6):
        name = f"{index:04d}.wav"
        (root / "raw" / name).write_bytes(tone(0.1 + index / 100))
        entries.append(
            {"filename": name, "covid19": index % 2 == 0, "source": ["telegram", "call-center"][index % 3 > 0]}
        )
    (root / "metadata.json").write_text(json.dumps(entries))
    (tmp_path / "secret.wav").write_bytes(tone(0.77))
    (root / "raw" / "9999.wav").symlink_to(tmp_path / "secret.wav")
    return root


def test_an_uploaded_dataset_ingests_as_its_folder_does(covid19_cough, cohort, bucket, tmp_path):
    for folder in (covid19_cough, cohort):
        lines = []
        done = upload(folder, f"{bucket}/datasets", progress=lines.append)
        assert done.source == f"{bucket}/datasets/{folder.name}" and lines[-1].endswith(" files")
        source, local = parse_source(done.source), parse_source(str(folder))
        assert (source.name, source.kind) == (local.name, local.kind)
        from_folder, folder_report = ingest([str(folder)], open_store(str(tmp_path / f"a-{folder.name}")), KEY, **QUIET)
        from_store, store_report = ingest([done.source], open_store(str(tmp_path / f"b-{folder.name}")), KEY, **QUIET)
        assert len(from_folder) > 0 and from_store[CONTENT].equals(from_folder[CONTENT])
        assert all(path.startswith(done.source + "/") for path in from_store["original_path"])
        assert len(store_report.missing) == len(folder_report.missing)
        again = upload(folder, f"{bucket}/datasets", **QUIET)
        assert again.copied == 0 and again.unchanged == done.copied
    # The link out of the dataset is not copied, and the upload says so; its bytes never reach the store.
    covid = upload(covid19_cough, f"{bucket}/datasets", **QUIET)
    (refused,) = covid.refused
    assert "9999.wav" in refused and "outside" in refused
    store = open_store(f"{bucket}/datasets/covid19-cough")
    assert "raw/9999.wav" not in store.list() and all(store.get(key) != tone(0.77) for key in store.list())


def test_a_manifest_in_the_store_cannot_name_a_key_outside_its_prefix(bucket):
    store = open_store(bucket)
    store.put("outside/secret.wav", tone(0.77))
    store.put("set/good.wav", tone(0.2))
    store.put("set/m.csv", b"path,label,participant\ngood.wav,positive,p1\n../outside/secret.wav,negative,p2\n")
    frame, report = ingest([f"{bucket}/set/m.csv"], open_store(f"{bucket}/lake"), KEY, **QUIET)
    assert frame["original_path"].tolist() == [f"{bucket}/set/good.wav"]
    (refused,) = report.refused
    assert "../outside/secret.wav" in refused and "leads outside" in refused


def test_store_sources_that_cannot_be_read_say_why(bucket):
    open_store(bucket).put("other/readme.txt", b"not a dataset")
    with pytest.raises(InputError, match="holds nothing: copy a dataset there first"):
        parse_source(f"{bucket}/empty")
    with pytest.raises(InputError, match="cannot recognise source"):
        parse_source(f"{bucket}/other")
    with pytest.raises(InputError, match="names a whole bucket"):
        parse_source(f"{bucket}/")
    with pytest.raises(InputError, match="no such object"):
        parse_source(f"{bucket}/other/m.csv")


def test_app_uploads_are_read_with_their_sidecars_and_bad_ones_quarantined(bucket):
    store = open_store(f"{bucket}/project")
    uploads = {
        "2026/12/01/good.wav": tone(0.1),
        "2026/12/01/good.json": json.dumps({"participant": "app-7", "label": "positive", "device": "android"}),
        "2026/12/01/also.wav": tone(0.2),
        "2026/12/01/also.json": json.dumps({"participant": "app-8", "sound_type": "breathing", "age": 34, "x": 1}),
        "2026/12/01/broken.wav": tone(0.3),
        "2026/12/01/broken.json": "{not json",
        "2026/12/01/nobody.wav": tone(0.4),
        "2026/12/01/nobody.json": json.dumps({"label": "negative"}),
        "2026/12/01/list.wav": tone(0.5),
        "2026/12/01/list.json": json.dumps(["participant", "app-9"]),
        "2026/12/01/in-flight.wav": tone(0.6),
        "2026/12/01/orphan.json": json.dumps({"participant": "app-10"}),
        "2026/12/01/notes.txt": "hello",
    }
    for key, data in uploads.items():
        store.put(layout.UPLOADS + key, data if isinstance(data, bytes) else data.encode())
    frame, report = ingest(["uploads"], store, KEY, **QUIET)
    rows = frame.set_index(frame["original_path"].str.rsplit("/", n=1).str[1])
    assert sorted(rows.index) == ["also.wav", "good.wav"]
    assert rows.loc["good.wav", "raw_label"] == "positive" and rows.loc["good.wav", "device"] == "android"
    assert rows.loc["also.wav", "sound_type"] == "breathing" and rows.loc["also.wav", "age_band"] == "30-39"
    assert set(frame["origin"]) == {"uploads"} and set(frame["source"]) == {"uploads"}
    assert "app-7" not in "".join(frame["participant_id"]), "participants are pseudonymised"
    refused = "\n".join(report.refused)
    for name, why in (
        ("broken.wav", "not JSON"),
        ("nobody.wav", "names no participant"),
        ("list.wav", "not a JSON object"),
        ("in-flight.wav", "has no sidecar"),
        ("notes.txt", "is not a"),
    ):
        assert any(name in line and why in line for line in report.refused), (name, refused)
    quarantined = [store.get_json(key) for key in store.list(f"{layout.QUARANTINE}uploads/")]
    assert sorted(record["upload"].rsplit("/", 1)[1] for record in quarantined) == sorted(
        ["broken.wav", "nobody.wav", "list.wav", "in-flight.wav", "notes.txt"]
    )
    assert all(record["reason"] in report.refused for record in quarantined)
    assert any("orphan.json" in line and "no recording" in line for line in report.missing)
    assert any("'x'" in note and "not read" in note for note in report.metadata_notes)
    # Each upload is ingested once: a later run adds nothing to the lake.
    again, second = ingest(["uploads"], store, KEY, **QUIET)
    assert second.new_objects == 0 and again["recording_id"].tolist() == frame["recording_id"].tolist()


def test_a_run_with_nothing_to_ingest_says_what_to_give(store):
    frame, report = ingest(["telemetry", "uploads"], store, KEY, **QUIET)
    assert frame.empty
    message = nothing_found(["telemetry", "uploads"], report)
    assert "no recordings in sources ['telemetry', 'uploads']" in message
    assert "auscult upload FOLDER s3://" in message and "uploads/" in message


def test_the_upload_command_prints_the_source_to_give(covid19_cough, bucket, capsys):
    from pipelines.cli import main

    assert main(["upload", str(covid19_cough), f"{bucket}/datasets"]) == 1, "a file was not copied: it says so"
    out = capsys.readouterr().out
    assert "7 files copied, 0 already there, 1 not copied" in out and "9999.wav" in out
    assert f"give the pipeline this source: {bucket}/datasets/covid19-cough" in out
    assert main(["upload", str(covid19_cough), "/tmp/not-a-bucket"]) == 2


def test_an_upload_copies_a_folder_reached_twice_once(covid19_cough, bucket):
    (covid19_cough / "raw" / "again").symlink_to("..", target_is_directory=True)  # a link back up the tree
    (covid19_cough / "raw" / "twice").symlink_to("..", target_is_directory=True)
    done = upload(covid19_cough, f"{bucket}/datasets", **QUIET)
    assert done.copied == 7 and sum("copied already" in reason for reason in done.refused) == 2
