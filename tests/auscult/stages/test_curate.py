import numpy as np
import pandas as pd
import pytest

from auscult import audio, layout, table
from auscult.stages.curate import QualityRules, curate, judge, measure, profile_html, reason_counts
from auscult.stages.ingest import ingest
from auscult.store import FileStore
from tests.auscult import audio_files as files
from tests.conftest import KEY


def write_cases(folder):
    """One file of each kind a collection receives, in a manifest."""
    rng = np.random.default_rng(0)
    cough = np.concatenate([np.zeros(4000), 0.3 * rng.standard_normal(8000), np.zeros(4000)]).astype(np.float32)
    cases = {
        "good.wav": audio.encode_wav(cough),
        "silent.wav": audio.encode_wav(np.zeros(16000, dtype=np.float32)),
        "clipped.wav": audio.encode_wav(np.clip(cough * 50, -1, 1)),
        "short.wav": audio.encode_wav(cough[4000:6000]),
        "empty.wav": b"",
        "corrupt.wav": audio.encode_wav(cough)[:30],
    }
    lines = ["path,label,participant"]
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        lines.append(f"{name},positive,{name}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def test_every_defect_is_quarantined_with_a_reason_naming_the_file(tmp_path, store):
    frame, _ = ingest([str(write_cases(tmp_path))], store, KEY, progress=lambda _: None)
    curated, expectations = curate(frame, store, progress=lambda _: None)
    by_file = {row.original_path.rsplit("/", 1)[-1]: row for row in curated.itertuples()}
    assert by_file["good.wav"].status == table.OK and pd.isna(by_file["good.wav"].reason)
    expected = {
        "silent.wav": "silent",
        "clipped.wav": "clipped",
        "short.wav": "too short",
        "empty.wav": "empty file",
        "corrupt.wav": "cannot decode",
    }
    for name, words in expected.items():
        row = by_file[name]
        assert row.status == table.QUARANTINED, name
        assert name in row.reason and words in row.reason, row.reason
    assert len(curated) == 6, "nothing is dropped"
    assert len(store.list(layout.QUARANTINE)) == 5
    assert all(e["success"] for e in expectations)


def test_hostile_files_are_quarantined_and_phone_formats_kept(tmp_path, store):
    """Whatever the bytes, curate finishes: every file is kept or quarantined with a reason naming it, and the
    profile (its histograms) only ever sees finite measures."""
    cases = {
        "browser.webm": files.phone_bytes(files.cough(48_000), "webm"),
        "iphone.m4a": files.phone_bytes(files.cough(44_100), "m4a"),
        "android.3gp": files.phone_bytes(files.cough(8_000), "3gp"),
        "voice.amr": files.phone_bytes(files.cough(8_000, seed=1), "amr"),
        "misnamed.wav": files.phone_bytes(files.cough(44_100, seed=2), "m4a"),
        "huge.flac": files.flac_claiming(2**36 - 1),
        "inf.wav": files.float_wav(np.inf),
        "nan.wav": files.float_wav(np.nan),
        "channels.wav": files.wav_patched(channels=1000),
        "random.mp3": np.random.default_rng(0).bytes(4096),
        "long.wav": audio.encode_wav(files.tone(audio.MAX_DURATION_S + 1, 8_000)[:, 0], 8_000),
        "truncated.m4a": files.phone_bytes(files.cough(44_100, seed=3), "m4a")[:2000],
    }
    lines = ["path,label,participant"]
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        lines.append(f"{name},positive,{name}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    frame, _ = ingest([str(tmp_path / "manifest.csv")], store, KEY, progress=lambda _: None)
    frame["format"] = frame["original_path"].str.rsplit(".", n=1).str[1]  # as recorded from the name
    notes = []
    curated, expectations = curate(frame, store, progress=notes.append)
    by_file = {row.original_path.rsplit("/", 1)[-1]: row for row in curated.itertuples()}
    assert len(curated) == len(cases)
    for name in ("browser.webm", "iphone.m4a", "android.3gp", "voice.amr", "misnamed.wav"):
        assert by_file[name].status == table.OK, (name, by_file[name].reason)
    assert any("misnamed.wav is m4a" in note for note in notes), notes  # noted, not quarantined
    expected = {
        "huge.flac": "too long (longer than 60 s: the header claims 68719476735 frames",
        "inf.wav": "NaN or infinite samples",
        "nan.wav": "NaN or infinite samples",
        "channels.wav": "unsupported channel count (1000",
        "random.mp3": "not a recognised audio format",
        "long.wav": "too long (longer than 60 s",
        "truncated.m4a": "cannot decode as m4a",
    }
    for name, words in expected.items():
        row = by_file[name]
        assert row.status == table.QUARANTINED and row.reason.startswith(row.original_path + ": "), row.reason
        assert words in row.reason, row.reason
    assert reason_counts(curated) == {
        "too long": 2,
        "NaN or infinite samples": 2,
        "unsupported channel count": 1,
        "not a recognised audio format": 1,
        "cannot decode as m4a": 1,
    }
    assert all(e["success"] for e in expectations)
    assert "data:image/png;base64" in profile_html(curated, expectations)


def curate_files(folder, store, cases: dict[str, bytes]):
    lines = ["path,label,participant"]
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        lines.append(f"{name},positive,{name}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    frame, _ = ingest([str(folder / "manifest.csv")], store, KEY, progress=lambda _: None)
    curated, _ = curate(frame, store, progress=lambda _: None)
    return {row.original_path.rsplit("/", 1)[-1]: row for row in curated.itertuples()}


def test_the_largest_float_samples_are_measured_not_a_crash(tmp_path, store):
    """A stereo float WAV, silent but for one frame of 3e38: a float32 mean of its channels is infinite."""
    wave = np.zeros((32_000, 2), dtype=np.float32)
    wave[1000] = 3e38
    by_file = curate_files(tmp_path, store, {"loud.wav": files.libsndfile_bytes(wave, 16_000, "WAV", "FLOAT")})
    row = by_file["loud.wav"]
    assert row.status == table.QUARANTINED and "silent" in row.reason, row.reason
    assert np.isfinite([row.rms_dbfs, row.peak, row.bandwidth_hz]).all()


def test_a_recording_that_trips_a_measure_is_quarantined_naming_the_error(tmp_path, store, monkeypatch):
    """Whatever a measure raises on one recording, the others are curated and that one is quarantined."""
    measured = audio.bandwidth

    def failing(wave, rate, *args):
        if rate == 22_050:
            raise IndexError("index -1 is out of bounds for axis 0 with size 0")
        return measured(wave, rate, *args)

    monkeypatch.setattr(audio, "bandwidth", failing)
    odd = files.libsndfile_bytes(files.cough(22_050), 22_050)
    by_file = curate_files(
        tmp_path, store, {"good.wav": files.libsndfile_bytes(files.cough(16_000), 16_000), "odd.wav": odd}
    )
    assert by_file["good.wav"].status == table.OK
    row = by_file["odd.wav"]
    assert row.status == table.QUARANTINED
    assert (
        row.reason
        == f"{row.original_path}: cannot be measured (IndexError: index -1 is out of bounds for axis 0 with size 0)"
    )


def test_judge_thresholds():
    rules = QualityRules()
    base = {"duration_s": 2.0, "rms_dbfs": -20.0, "active_s": 1.0, "clipped_fraction": 0.0, "snr_db": 20.0}
    assert judge(base, rules) is None
    assert "too noisy" in judge({**base, "snr_db": 1.0}, rules)
    assert "too short" in judge({**base, "duration_s": 0.2}, rules)


def test_measure_reports_stereo_and_rate(tmp_path):
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.full((4410, 2), 0.1), 44100, format="WAV")
    measured = measure(buffer.getvalue())
    assert measured["channels"] == 2 and measured["sample_rate"] == 44100
    assert measured["rms_dbfs"] == pytest.approx(-20.0, abs=0.1)  # a constant 0.1 is -20 dBFS


def test_profile_and_reason_counts(labelled):
    counts = reason_counts(labelled)
    assert sum(counts.values()) == int((labelled["status"] == table.QUARANTINED).sum()) > 0
    html = profile_html(labelled, [])
    assert "data:image/png;base64" in html and "Quarantine reasons" in html


@pytest.mark.parametrize("count", [3, 8])
def test_any_sharding_gives_the_same_curated_table_and_quarantine(cohort, tmp_path, count):
    """The acceptance's same-answer test for curate: each shard measured on its own, in any order, then checked as
    one table, gives what one shard gives, row for row and reason for reason; so do the quarantine records."""
    from auscult.stages.curate import check, measure_shard, quarantine_decisions

    quiet = lambda _: None  # noqa: E731
    one_store, sharded_store = FileStore(tmp_path / "one"), FileStore(tmp_path / "sharded")
    frame, _ = ingest([str(cohort)], one_store, KEY, progress=quiet)
    whole, whole_checks = curate(frame, one_store, progress=quiet)
    parts = [measure_shard(frame, shard, count, progress=quiet) for shard in reversed(range(count))]
    assert sum(len(part) for part in parts) == len(frame) and sum(len(part) > 0 for part in parts) > 1
    sharded, sharded_checks = check(frame, parts, sharded_store)
    pd.testing.assert_frame_equal(sharded, whole)
    assert sharded_checks == whole_checks
    assert quarantine_decisions(sharded) == quarantine_decisions(whole)
    assert sharded_store.list(layout.QUARANTINE) == one_store.list(layout.QUARANTINE)
    assert curate(frame, sharded_store, progress=quiet, count=count)[0].equals(whole)


def test_a_shard_missing_from_the_merge_is_an_error_not_a_smaller_table(cohort, store):
    from auscult.stages.curate import check, measure_shard

    frame, _ = ingest([str(cohort)], store, KEY, progress=lambda _: None)
    parts = [measure_shard(frame, shard, 3, progress=lambda _: None) for shard in range(3)]
    with pytest.raises(ValueError, match="in no shard"):
        check(frame, parts[:2], store)
