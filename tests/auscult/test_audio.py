import io

import numpy as np
import pytest
import soundfile as sf

from auscult import audio


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


@pytest.mark.parametrize("data, message", [(b"", "empty"), (b"RIFF\x00\x00garbage" * 3, "cannot decode")])
def test_undecodable_bytes_raise_with_a_reason(data, message):
    with pytest.raises(audio.DecodeError, match=message):
        audio.decode(data)


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
