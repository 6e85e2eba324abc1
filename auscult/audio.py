"""Audio: decoding, the one waveform preparation shared by prep and serving, and input statistics.

Everything here is numpy/soundfile/soxr so that the serving environment (no torch) runs exactly the same code as
the training pipeline: what the model sees in production is prepared the way it was in training.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
WINDOW_S = 2.0
MAX_WINDOWS = 2
FRAME_S = 0.025
# The longest recording anything uses: curate quarantines longer ones, serving refuses them, so the model
# never trains on what it would not be asked about.
MAX_DURATION_S = 60.0
MIN_DURATION_S = 0.1  # the shortest request serving answers; curate asks more of a training recording
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


MIN_RISE_DB = 3.0


def active_frames(wave: np.ndarray, rate: int, threshold_db: float = -50.0, rise_db: float = 6.0) -> np.ndarray:
    """Frames above an absolute floor that rise above the recording's own noise floor (its 10th percentile).

    They must rise ``rise_db``, or half the recording's dynamic range (95th minus 10th percentile) when that is
    smaller, but never less than :data:`MIN_RISE_DB`, so that steady noise stays inactive. A steady cough over
    a constant line noise spans only a few decibels, and demanding a fixed rise would call it silence (on
    covid19-cough that quarantined call-centre coughs, nearly all positive).
    """
    levels = to_db(frame_rms(wave, rate))
    noise_floor, loud = np.percentile(levels, [10, 95])
    rise = max(MIN_RISE_DB, min(rise_db, (loud - noise_floor) / 2))
    return (levels > threshold_db) & (levels > noise_floor + rise)


def bandwidth(wave: np.ndarray, rate: int, below_peak_db: float = 70.0) -> float:
    """Estimated bandwidth (Hz): the highest frequency at which the recording's average spectrum is within
    ``below_peak_db`` of its peak. A channel gives itself away here (an 8 kHz phone line stops near 3.4-4 kHz,
    a lossy codec at its low-pass) whatever the file's sample rate says. The margin is wide so that the edge is
    the channel's, where the spectrum falls off a cliff, and not where a quieter sound fades into its noise."""
    size = min(len(wave), 2048)
    if size < 16:
        return 0.0
    freqs, power = scipy.signal.welch(wave.astype(np.float64), fs=rate, nperseg=size)
    level = 10 * np.log10(np.maximum(power, 1e-30))
    return float(freqs[np.flatnonzero(level >= level.max() - below_peak_db)[-1]])


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
# Raised whenever a statistic's definition changes: monitoring compares only statistics of the same version.
# 3: silence is trimmed relative to the recording's dynamic range (see active_frames).
# 2: the centroid over Hann-windowed 32 ms frames (1: one FFT over the first 10 s).
STATS_VERSION = 3


CENTROID_FRAME = 512  # 32 ms at 16 kHz


def spectral_centroid(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Centroid (Hz) of the magnitude spectrum averaged over consecutive Hann-windowed 32 ms frames."""
    count = len(wave) // CENTROID_FRAME
    if count:
        frames = wave[: count * CENTROID_FRAME].reshape(count, CENTROID_FRAME) * _hann(CENTROID_FRAME)
    else:  # shorter than one frame: window what there is, then pad
        frames = np.pad(wave * _hann(len(wave)), (0, CENTROID_FRAME - len(wave)))[None, :]
    # Many short single-precision FFTs cost a tenth of one long double-precision FFT over the clip; the window
    # keeps leakage from the frames' edges from pulling the centroid up.
    magnitude = np.abs(scipy.fft.rfft(frames, axis=-1)).sum(axis=0)
    total = float(magnitude.sum())
    freqs = np.fft.rfftfreq(CENTROID_FRAME, 1.0 / rate).astype(np.float32)
    return float(np.dot(freqs, magnitude) / total) if total > 0 else 0.0


@functools.lru_cache(maxsize=8)
def _hann(size: int) -> np.ndarray:
    return np.hanning(size + 2)[1:-1].astype(np.float32)


def input_stats(wave: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Summary statistics of a prepared waveform, the inputs that monitoring watches for drift."""
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) == 0:
        return dict.fromkeys(STAT_NAMES, 0.0) | {"rms_dbfs": float(to_db(0.0))}
    crossings = np.count_nonzero(np.signbit(wave[1:]) != np.signbit(wave[:-1]))
    return {
        "duration_s": len(wave) / rate,
        "rms_dbfs": float(to_db(np.sqrt(np.dot(wave, wave) / len(wave)))),
        "zero_crossing_rate": crossings / (len(wave) - 1) if len(wave) > 1 else 0.0,
        "spectral_centroid_hz": spectral_centroid(wave, rate),
    }


def encode_wav(wave: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit PCM WAV bytes (samples clipped to [-1, 1]); written directly, it costs a fifth of libsndfile's."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"encode_wav takes one mono waveform, not an array of shape {wave.shape}")
    pcm = np.rint(np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2")
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + pcm.nbytes,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # PCM
        1,  # channels
        rate,
        rate * 2,  # bytes per second
        2,  # block align
        16,  # bits per sample
        b"data",
        pcm.nbytes,
    )
    return header + pcm.tobytes()
