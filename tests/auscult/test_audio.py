import io
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from auscult import audio
from tests.auscult import audio_files as files


def encode(wave: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decode_every_supported_format(fmt):
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    decoded = audio.decode(encode(np.stack([tone, tone], axis=1), 22050, fmt))
    assert decoded.sample_rate == 22050 and decoded.channels == 2
    assert decoded.duration_s == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    "fmt, channels, seconds",
    [("webm", 2, 1.0), ("webm", 1, 5.0), ("m4a", 1, 5.0), ("m4a", 2, 1.0), ("3gp", 1, 5.0), ("amr", 1, 2.0)],
)
def test_decode_phone_formats_to_their_length_rate_and_pitch(fmt, channels, seconds):
    rate = files.PHONE[fmt][2]
    decoded = audio.decode(files.phone_bytes(files.tone(seconds, rate, channels), fmt))
    assert (decoded.format, decoded.sample_rate, decoded.channels) == (fmt, rate, channels)
    # Codecs pad to whole frames (AAC's are 1024 samples, 23 ms at 44.1 kHz).
    assert decoded.duration_s == pytest.approx(seconds, abs=0.05)
    mono = audio.to_mono(decoded.samples)
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.fft.rfftfreq(len(mono), 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=5)
    assert np.sqrt(np.mean(mono**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.25)  # AMR-NB is the loosest


def test_decode_converts_packed_integer_samples_too():
    """Chrome's MediaRecorder can write PCM in WebM: 16-bit samples, channels interleaved."""
    wave = files.tone(1.0, 48_000, channels=2) * np.array([1.0, 0.5], dtype=np.float32)
    decoded = audio.decode(files.encoded(wave, 48_000, "matroska", "pcm_s16le"))
    assert decoded.format == "webm"
    np.testing.assert_allclose(decoded.samples, wave, atol=2 / 32767)


def test_sniff_format_goes_by_the_bytes_not_the_name():
    wave = files.tone(0.5, 16_000)
    made = {
        "wav": audio.encode_wav(wave[:, 0]),
        "flac": files.libsndfile_bytes(wave, 16_000, "FLAC"),
        "ogg": files.libsndfile_bytes(wave, 48_000, "OGG", "OPUS"),  # Opus in Ogg is "ogg"
        "mp3": files.libsndfile_bytes(wave, 16_000, "MP3", "MPEG_LAYER_III"),
        **{fmt: files.phone_bytes(files.tone(0.5, rate), fmt) for fmt, (_, _, rate) in files.PHONE.items()},
    }
    assert {fmt: audio.sniff_format(data) for fmt, data in made.items()} == {fmt: fmt for fmt in made}
    assert set(made) == set(audio.FORMATS)
    assert audio.sniff_format(b"ID3\x04\x00" + bytes(20)) == "mp3"  # a tagged MP3
    assert audio.sniff_format(b"\x00\x00\x00\x18ftypmp42" + bytes(20)) == "m4a"  # Android's and Safari's .mp4
    assert audio.sniff_format(b"#!AMR-WB\n" + bytes(20)) == "amr"
    for other in (
        b"",
        b"\xff\xf1\x50\x80",
        b"\x00\x00\x00\x18ftypheic" + bytes(8),
        b"FORM\x00\x00AIFF",
        b"RIFF1234AVI ",
    ):
        assert audio.sniff_format(other) is None, other  # ADTS AAC, an image, AIFF, a video


FLAC_2_36 = 2**36 - 1  # the largest count STREAMINFO's 36 bits can claim: 2^36 frames, 256 GiB of float32


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty file (0 bytes)"),
        (np.random.default_rng(0).bytes(4096), "not a recognised audio format (first bytes: "),
        (b"RIFF\x00\x00garbage" * 3, "not a recognised audio format (first bytes: 52 49 46 46"),
        (files.flac_claiming(FLAC_2_36), f"too long (longer than 60 s: the header claims {FLAC_2_36} frames"),
        (files.flac_claiming(16_000 * 61), "cannot decode as flac (malformed or truncated)"),  # the data ends early
        (files.flac_claiming(0), "cannot decode as flac (malformed or truncated)"),  # "unknown": libsndfile can't
        (files.wav_patched(channels=1000), "unsupported channel count (1000; 1-8 are read)"),
        (files.wav_patched(rate=1), "unsupported sample rate (1 Hz"),
        (files.wav_patched(data_bytes=0), "no audio frames"),
        (files.float_wav(np.inf), "NaN or infinite samples (1 of 16000)"),
        (files.float_wav(np.nan, -np.inf), "NaN or infinite samples (2 of 16000)"),
        (audio.encode_wav(np.zeros(16_000, np.float32))[:30], "cannot decode as wav"),
        (files.libsndfile_bytes(files.tone(1, 16_000), 16_000, "FLAC")[:30], "cannot decode as flac"),
        (files.libsndfile_bytes(files.tone(1, 16_000), 16_000, "MP3", "MPEG_LAYER_III")[:300], "cannot decode as mp3"),
        (b"OggS" + bytes(60), "cannot decode as ogg"),
        (files.phone_bytes(files.tone(1, 44_100), "m4a")[:2000], "cannot decode as m4a"),
        (files.phone_bytes(files.tone(1, 48_000), "webm")[:20], "cannot decode as webm"),
        (b"#!AMR\n", "no audio frames"),
        (files.long_webm(600, with_duration=True), "too long (longer than 60 s: the container claims 600"),
        (audio.encode_wav(files.tone(120, 8_000)[:, 0], 8_000), "too long (longer than 60 s: the header claims"),
        (audio.encode_wav(files.tone(61, 8_000)[:, 0], 8_000), "too long (longer than 60 s: decoding stopped there)"),
    ],
    ids=lambda value: None if isinstance(value, bytes) else value.split(" (")[0],
)
def test_hostile_bytes_raise_a_decode_error_that_says_what_is_wrong(data, words):
    tracemalloc.start()
    try:
        with pytest.raises(audio.DecodeError) as refused:
            audio.decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in str(refused.value)
    assert peak < 64 * 2**20, f"decoding took {peak / 2**20:.0f} MiB"


def test_a_header_that_claims_too_little_only_shortens_the_audio():
    """A WAV's sizes can say anything up to 4 GiB; libsndfile reads what the file holds, never more."""
    decoded = audio.decode(files.wav_patched(data_bytes=2**32 - 1))
    assert decoded.duration_s == pytest.approx(1.0)


def test_the_limit_itself_is_decoded():
    decoded = audio.decode(audio.encode_wav(files.tone(audio.MAX_DURATION_S, 8_000)[:, 0], 8_000))
    assert decoded.duration_s == audio.MAX_DURATION_S


def test_a_long_webm_without_a_duration_is_refused_without_decoding_it_all():
    """A browser's recording has no duration in its header: decoding stops at the limit (all 20 minutes would
    take some 3 s and 230 MB here; this takes 0.3 s, 0.5 s traced)."""
    data = files.long_webm(1200, with_duration=False)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(audio.DecodeError, match="longer than 60 s: decoding stopped there"):
            audio.decode(data)
        elapsed, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"decoding took {peak / 2**20:.0f} MiB"  # 60 s at 48 kHz is 11 MiB of float32
    assert elapsed < 2.0


def test_a_small_file_that_decodes_to_too_many_samples_is_refused_from_its_header():
    """A minute of a constant at 192 kHz on 8 channels is ~100 KB of FLAC and 92M samples (369 MB of float32): each
    bound (duration, rate, channels) allows it, their product does not."""
    data = files.constant_flac(60, 192_000, 8)
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(audio.DecodeError, match=r"too large to decode \(the header claims 11520000 frames"):
            audio.decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"decoding took {peak / 2**20:.0f} MiB"


def test_too_many_samples_without_a_stated_length_stop_decoding_at_the_budget():
    """A browser's recording states no length: 50 s of 5.1 (14.4M samples) is refused once the budget is read,
    when the same 50 s in mono decodes."""
    data = files.long_webm(50, with_duration=False, layout="5.1")
    tracemalloc.start()
    try:
        with pytest.raises(audio.DecodeError, match="too large to decode .*decoding stopped there"):
            audio.decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"decoding took {peak / 2**20:.0f} MiB"  # the budget is 44 MiB of float32
    assert audio.decode(files.long_webm(50, with_duration=False)).duration_s == pytest.approx(50, abs=0.1)


@pytest.mark.parametrize("rate", [48_000, 96_000])  # 96 kHz: the budget itself
def test_a_minute_of_stereo_decodes(rate):
    decoded = audio.decode(files.libsndfile_bytes(files.tone(audio.MAX_DURATION_S, rate, channels=2), rate))
    assert (decoded.duration_s, decoded.channels) == (audio.MAX_DURATION_S, 2)


def test_float_samples_beyond_full_scale_are_decoded_as_they_are():
    """Curate's clipping rule judges them; decode only refuses what is not a number."""
    decoded = audio.decode(files.float_wav(3e38, -2.0))
    assert decoded.samples[100, 0] == np.float32(3e38) and decoded.samples[101, 0] == -2.0


def test_to_mono_of_the_largest_float_samples_stays_finite():
    loud = np.zeros((4, 2), dtype=np.float32)
    loud[1] = 3e38  # a float32 sum of the two is infinite
    mono = audio.to_mono(loud)
    assert mono.dtype == np.float32 and np.isfinite(mono).all() and mono[1] == np.float32(3e38)
    np.testing.assert_array_equal(audio.to_mono(np.array([[0.5, -0.25]], dtype=np.float32)), [0.125])


@pytest.mark.parametrize("wave", [np.zeros(4096), np.full(4096, np.inf), np.r_[np.zeros(4000), np.nan * np.ones(96)]])
def test_bandwidth_of_nothing_measurable_is_zero(wave):
    assert audio.bandwidth(wave.astype(np.float32), 16_000) == 0.0


def test_resample_changes_length_by_the_rate_ratio():
    wave = np.random.default_rng(0).standard_normal(44100).astype(np.float32)
    assert len(audio.resample(wave, 44100)) == 16000
    assert audio.resample(wave, 44100, target=44100) is wave


def test_windows_pad_short_audio_and_cap_long_audio():
    short = audio.windows(np.ones(1000, dtype=np.float32))
    assert short.shape == (1, 32000) and short[0, 999] == 1 and short[0, 1000] == 0
    long = audio.windows(np.ones(10 * 16000, dtype=np.float32), max_windows=2)
    assert long.shape == (2, 32000)


def test_trim_removes_silence_around_the_sound():
    rng = np.random.default_rng(0)
    wave = np.concatenate([np.zeros(16000), 0.5 * rng.standard_normal(8000), np.zeros(16000)]).astype(np.float32)
    trimmed = audio.trim(wave)
    assert 8000 <= len(trimmed) <= 8000 + 2 * 0.1 * 16000 + 400


def test_input_stats_are_finite_and_track_level():
    rng = np.random.default_rng(0)
    loud = audio.input_stats(0.5 * rng.standard_normal(16000).astype(np.float32))
    quiet = audio.input_stats(0.005 * rng.standard_normal(16000).astype(np.float32))
    assert set(loud) == set(audio.STAT_NAMES)
    assert loud["rms_dbfs"] - quiet["rms_dbfs"] == pytest.approx(40, abs=1)
    assert all(np.isfinite(v) for v in loud.values())


@pytest.mark.parametrize("samples", [300, 16000, 80_123])
def test_input_stats_of_a_tone(samples):
    t = np.arange(samples) / audio.SAMPLE_RATE
    stats = audio.input_stats((0.5 * np.sin(2 * np.pi * 1000 * t + 0.1)).astype(np.float32))
    assert stats["duration_s"] == pytest.approx(samples / audio.SAMPLE_RATE)
    assert stats["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert stats["zero_crossing_rate"] == pytest.approx(2 * 1000 / audio.SAMPLE_RATE, rel=0.05)
    assert stats["spectral_centroid_hz"] == pytest.approx(1000, rel=0.1 if samples < 512 else 0.02)


def test_wav_encoding_round_trips_and_clips():
    wave = np.array([0.0, 0.5, -0.5, 1.5, -2.0], dtype=np.float32)
    decoded = audio.decode(audio.encode_wav(wave, 8000))
    assert decoded.sample_rate == 8000 and decoded.channels == 1
    np.testing.assert_allclose(decoded.samples[:, 0], [0.0, 0.5, -0.5, 1.0, -1.0], atol=2 / 32767)


def steady_coughs(level_dbfs: float, seconds: float = 3.0, rate: int = 8_000, seed: int = 0) -> np.ndarray:
    """Coughs every 0.4 s over a line noise only ~8 dB below them: a call-centre recording that never rests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    bursts = np.exp(-((t % 0.4) / 0.08)) * rng.standard_normal(len(t))
    line = 0.4 * rng.standard_normal(len(t))
    wave = bursts + line
    return (wave / np.sqrt(np.mean(wave**2)) * 10 ** (level_dbfs / 20)).astype(np.float32)


@pytest.mark.parametrize("level", [-20.0, -35.0, -40.0])
def test_steady_low_level_coughs_are_kept(level):
    from auscult.stages.curate import QualityRules, judge, measure

    wave = steady_coughs(level)
    levels = audio.to_db(audio.frame_rms(wave, 8_000))
    assert np.percentile(levels, 95) - np.percentile(levels, 10) < 10  # little dynamic range
    measures = measure(encode(wave, 8_000, "WAV"))
    assert judge(measures, QualityRules()) is None, measures
    assert measures["active_s"] > 0.5


def test_steady_noise_and_digital_silence_are_silent():
    from auscult.stages.curate import QualityRules, judge, measure

    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(16_000) * 0.1).astype(np.float32)  # -20 dBFS, no event in it
    assert judge(measure(encode(hiss, 16_000, "WAV")), QualityRules()).startswith("silent")
    quiet = (rng.standard_normal(16_000) * 1e-4).astype(np.float32)
    assert judge(measure(encode(quiet, 16_000, "WAV")), QualityRules()).startswith("silent")


def test_bandwidth_sees_the_phone_line_whatever_the_sample_rate():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal(48_000).astype(np.float32) * 0.1
    phone = audio.resample(wide, 48_000, 8_000)
    stored_wide = audio.resample(phone, 8_000, 48_000)  # an 8 kHz call saved as a 48 kHz file
    assert audio.bandwidth(wide, 48_000) > 20_000
    assert 3_500 < audio.bandwidth(phone, 8_000) <= 4_000
    assert 3_500 < audio.bandwidth(stored_wide, 48_000) < 4_500
