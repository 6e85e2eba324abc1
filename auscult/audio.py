"""Audio: decoding, the one waveform preparation shared by prep and serving, and input statistics.

Everything here is numpy/soundfile/soxr so that the serving environment (no torch) runs exactly the same code as
the training pipeline: what the model sees in production is prepared the way it was in training.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
WINDOW_S = 2.0
MAX_WINDOWS = 2
FRAME_S = 0.025
FORMATS = ("wav", "flac", "ogg", "mp3")


class DecodeError(ValueError):
    """The bytes are not audio that can be decoded."""


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels), in [-1, 1]
    sample_rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def decode(data: bytes) -> Decoded:
    """Decode wav/flac/ogg/mp3 bytes (libsndfile) to float32 frames x channels."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        # libsndfile's message starts with the name of our in-memory buffer, which tells a reader nothing.
        detail = str(error).rsplit(": ", 1)[-1].strip() or type(error).__name__
        raise DecodeError(f"cannot decode ({detail})") from None
    if samples.shape[0] == 0:
        raise DecodeError("no audio frames")
    return Decoded(samples, int(rate))


def to_mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)


def resample(wave: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling to ``target`` Hz with libsoxr (high quality; 3x scipy's polyphase filter here)."""
    wave = wave.astype(np.float32, copy=False)
    if rate == target:
        return wave
    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)


def frame_rms(wave: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS of consecutive non-overlapping frames (at least one frame)."""
    size = max(1, int(rate * frame_s))
    count = max(1, len(wave) // size)
    framed = wave[: count * size].reshape(count, size) if len(wave) >= size else wave[None, :]
    return np.sqrt(np.mean(np.square(framed, dtype=np.float64), axis=1))


def to_db(value: np.ndarray | float) -> np.ndarray | float:
    return 20.0 * np.log10(np.maximum(value, 1e-10))


def active_frames(wave: np.ndarray, rate: int, threshold_db: float = -50.0) -> np.ndarray:
    """Frames that are clearly above both an absolute floor and the recording's own noise floor."""
    levels = to_db(frame_rms(wave, rate))
    noise_floor = np.percentile(levels, 10)
    return (levels > threshold_db) & (levels > noise_floor + 6.0)


def trim(wave: np.ndarray, rate: int = SAMPLE_RATE, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``pad_s`` around the active part."""
    active = np.flatnonzero(active_frames(wave, rate))
    if active.size == 0:
        return wave
    size = int(rate * FRAME_S)
    pad = int(rate * pad_s)
    start = max(0, active[0] * size - pad)
    stop = min(len(wave), (active[-1] + 1) * size + pad)
    return wave[start:stop]


def windows(wave: np.ndarray, window_s: float = WINDOW_S, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Fixed-length windows (zero-padded at the end), at most ``max_windows``; shape (n, samples)."""
    size = int(SAMPLE_RATE * window_s)
    count = int(min(max_windows, max(1, np.ceil(len(wave) / size))))
    out = np.zeros((count, size), dtype=np.float32)
    for index in range(count):
        piece = wave[index * size : (index + 1) * size]
        out[index, : len(piece)] = piece
    return out


def prepare(samples: np.ndarray, rate: int) -> np.ndarray:
    """Any decoded audio -> 16 kHz mono float32, silence trimmed: what the model's windows are cut from."""
    return trim(resample(to_mono(samples), rate), SAMPLE_RATE)


STAT_NAMES = ("duration_s", "rms_dbfs", "zero_crossing_rate", "spectral_centroid_hz")


def input_stats(wave: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Summary statistics of a prepared waveform, the inputs that monitoring watches for drift."""
    wave = wave.astype(np.float64, copy=False)
    spectrum = np.abs(np.fft.rfft(wave[: rate * 10])) if len(wave) else np.zeros(1)
    freqs = np.fft.rfftfreq(min(len(wave), rate * 10), 1.0 / rate) if len(wave) else np.zeros(1)
    power = float(spectrum.sum())
    return {
        "duration_s": len(wave) / rate,
        "rms_dbfs": float(to_db(np.sqrt(np.mean(wave**2)) if len(wave) else 0.0)),
        "zero_crossing_rate": float(np.mean(np.abs(np.diff(np.sign(wave))) > 0)) if len(wave) > 1 else 0.0,
        "spectral_centroid_hz": float((freqs * spectrum).sum() / power) if power > 0 else 0.0,
    }


def encode_wav(wave: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
