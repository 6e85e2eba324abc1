"""Audio: decoding, the one waveform preparation shared by prep and serving, and input statistics.

Everything here is numpy/soundfile/PyAV/soxr so that the serving environment (no torch) runs exactly the same code
as the training pipeline: what the model sees in production is prepared the way it was in training.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av
import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
WINDOW_S = 2.0
MAX_WINDOWS = 2
FRAME_S = 0.025
# The longest recording anything uses: decode refuses longer ones, so curate quarantines them and serving refuses
# them, and the model never trains on what it would not be asked about.
MAX_DURATION_S = 60.0
MIN_DURATION_S = 0.1  # the shortest request serving answers; curate asks more of a training recording
# What a file's header may say before anything is allocated for it: no microphone we hear from has more channels,
# and a rate outside this range is a broken or crafted header.
MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
# What decode may allocate, in samples (frames x channels): a minute of 96 kHz stereo, 46 MB of float32. The bounds
# above allow far more together (a minute of 192 kHz, 8 channels is 92M samples, 369 MB, and a FLAC of a constant
# holds it in 116 KB): this bounds their product, so that a small upload cannot make a worker allocate gigabytes.
MAX_DECODED_SAMPLES = int(MAX_DURATION_S * 96_000 * 2)
# The containers decode reads, named by what the bytes are (sniff_format); they are also the file extensions
# ingest accepts. Opus or Vorbis in Ogg is "ogg"; any Matroska is "webm"; MPEG audio layers I-III are "mp3"; MP4
# audio (iOS .m4a, Safari's and Android's .mp4 recordings) is "m4a".
FORMATS = ("wav", "flac", "ogg", "mp3", "webm", "m4a", "3gp", "amr")
LIBSNDFILE_FORMATS = frozenset({"wav", "flac", "ogg", "mp3"})  # fast, and exact about length; PyAV for the rest
_DEMUXERS = {"webm": "matroska", "m4a": "mp4", "3gp": "3gp", "amr": "amr"}  # FFmpeg's, never its own guess
_MP4_BRANDS = frozenset({b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"dash"})
_BLOCK_FRAMES = 65_536
# A length a header or container states can be an estimate (from the bitrate): only a claim well past the limit
# is refused unread; near it, the decoded frames decide.
_CLAIM_SLACK = 1.1


class DecodeError(ValueError):
    """The bytes are not audio that can be decoded; the message says what is wrong with them."""


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels), finite
    sample_rate: int
    format: str  # what the bytes are (sniff_format), whatever the file's name says

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def sniff_format(data: bytes) -> str | None:
    """The container ``data`` is, from its magic numbers (one of :data:`FORMATS`), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    # An ID3 tag, or an MPEG audio frame sync (11 bits set) with a layer that is not "reserved" (ADTS AAC's 00).
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06):
        return "mp3"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML
        return "webm"
    if data[4:8] == b"ftyp":  # an ISO base media file; its major brand says which
        brand = data[8:12]
        return "3gp" if brand.startswith(b"3g") else "m4a" if brand in _MP4_BRANDS else None
    if data[:5] == b"#!AMR":  # AMR-NB, or AMR-WB ("#!AMR-WB")
        return "amr"
    return None


def decode(data: bytes) -> Decoded:
    """Decode audio bytes to float32 frames x channels at their own rate, within :data:`MAX_DURATION_S`.

    Raises :class:`DecodeError`, and nothing else, for bytes that are not such audio: unknown or broken, a header
    that is implausible or claims more than the limits, more than :data:`MAX_DURATION_S` of audio or more than
    :data:`MAX_DECODED_SAMPLES` samples, NaN or infinite samples. Memory stays within the limits whatever a header
    says: the audio is read in blocks and reading stops there. Float samples beyond full scale are returned as they
    are: curate's clipping rule judges them.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise DecodeError(f"not a recognised audio format (first bytes: {data[:12].hex(' ')})")
    read = _read_libsndfile if fmt in LIBSNDFILE_FORMATS else _read_pyav
    try:
        samples, rate = read(data, fmt)
    except DecodeError:
        raise
    except Exception as error:  # hostile bytes can make a decoder raise anything: to the caller it is all bad bytes
        raise DecodeError(f"cannot decode as {fmt} ({_reason(error)})") from error
    bad = samples.size - np.count_nonzero(np.isfinite(samples))
    if bad:
        raise DecodeError(f"NaN or infinite samples ({bad} of {samples.size})")
    return Decoded(samples, rate, fmt)


def _read_libsndfile(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    with sf.SoundFile(io.BytesIO(data)) as file:
        # libsndfile says "unknown" (FLAC's total samples of 0, from a streaming encoder) with its largest count.
        claimed = file.frames if file.frames < 2**63 - 1 else None
        rate, channels = file.samplerate, file.channels
        _check_header(rate, channels)
        if claimed is not None:
            seconds = claimed / rate
            span = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"
            _check_claim(seconds, rate, channels, f"the header claims {claimed} frames at {rate} Hz, {span}")
            # A claim within the limits is read in one piece (libsndfile never reads past its own count).
            return _gather([file.read(claimed, dtype="float32", always_2d=True)], rate, channels), rate
        return _gather(_libsndfile_blocks(file), rate, channels), rate


def _libsndfile_blocks(file: sf.SoundFile) -> Iterator[np.ndarray]:
    while len(block := file.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        yield block


def _read_pyav(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    # The demuxer is chosen by the sniffed format: FFmpeg's own probing would also open playlists and the like.
    with av.open(io.BytesIO(data), format=_DEMUXERS[fmt]) as container:
        if not container.streams.audio:
            raise DecodeError(f"no audio stream in the {fmt} container")
        stream = container.streams.audio[0]
        rate, channels = stream.sample_rate, stream.channels
        _check_header(rate, channels)
        if stream.duration is not None and stream.time_base is not None:
            claimed_s = float(stream.duration * stream.time_base)
        else:
            claimed_s = container.duration / av.time_base if container.duration is not None else None
        if claimed_s is not None:
            _check_claim(claimed_s, rate, channels, f"the container claims {claimed_s:.1f} s at {rate} Hz")
        return _gather(_pyav_blocks(container.decode(stream), rate, channels), rate, channels), rate


def _pyav_blocks(frames: Iterable[av.AudioFrame], rate: int, channels: int) -> Iterator[np.ndarray]:
    """Decoded frames as float32 (frames, channels) blocks; the rate and channels must stay those announced."""
    to_float = av.AudioResampler(format="fltp")  # only the sample format: same rate and layout, planar float
    for frame in frames:
        if frame.sample_rate != rate or frame.layout.nb_channels != channels:
            raise DecodeError(
                f"the stream changes from {rate} Hz, {channels} channels to "
                f"{frame.sample_rate} Hz, {frame.layout.nb_channels} channels"
            )
        for planar in to_float.resample(frame):
            yield planar.to_ndarray().T


def _check_header(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DecodeError(f"unsupported sample rate ({rate} Hz; {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz are read)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise DecodeError(f"unsupported channel count ({channels}; 1-{MAX_CHANNELS} are read)")


def _check_claim(seconds: float, rate: int, channels: int, claim: str) -> None:
    """Refuse, before anything is allocated, a stated length well past either limit."""
    if seconds > MAX_DURATION_S * _CLAIM_SLACK:
        raise _too_long(claim)
    if seconds * rate * channels > MAX_DECODED_SAMPLES * _CLAIM_SLACK:
        raise _too_large(f"{claim}, {channels} channels")


def _gather(blocks: Iterable[np.ndarray], rate: int, channels: int) -> np.ndarray:
    """Join (frames, channels) blocks until they end; refuse, without reading on, once they pass a limit."""
    limit, budget, total, parts = _max_frames(rate), MAX_DECODED_SAMPLES // channels, 0, []
    for block in blocks:
        total += len(block)
        if total > limit:
            raise _too_long("decoding stopped there")
        if total > budget:
            raise _too_large(f"{channels} channels at {rate} Hz, decoding stopped there")
        parts.append(block)
    if not total:
        raise DecodeError("no audio frames")
    return np.concatenate(parts)


def _max_frames(rate: int) -> int:
    return int(MAX_DURATION_S * rate)


def _too_long(detail: str) -> DecodeError:
    return DecodeError(f"too long (longer than {MAX_DURATION_S:.0f} s: {detail})")


def _too_large(detail: str) -> DecodeError:
    return DecodeError(
        f"too large to decode ({detail}; at most {MAX_DECODED_SAMPLES} samples, frames x channels, are decoded: "
        "a minute of 96 kHz stereo)"
    )


def _reason(error: Exception) -> str:
    """A decoder's complaint in words, without the name of our in-memory buffer."""
    if isinstance(error, sf.LibsndfileError):
        # libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" of an MPEG stream it
        # cannot parse, and "Internal psf_fseek() failed" of FLAC data that ends before its header says: neither
        # tells a reader what is wrong with the file.
        text = error.error_string
        return "malformed or truncated" if "regular file" in text or "psf_fseek" in text else text.rstrip(".")
    if isinstance(error, av.FFmpegError):
        return error.strerror or type(error).__name__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def to_mono(samples: np.ndarray) -> np.ndarray:
    """The channels' mean as float32. Summed in float64: float32 sums of samples near its largest value (a float
    file may hold 3e38) overflow to infinity, and a mean is never larger than its largest sample."""
    if samples.ndim == 1:
        return samples.astype(np.float32)
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32)


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
    the channel's, where the spectrum falls off a cliff, and not where a quieter sound fades into its noise.
    0.0 when there is nothing to measure: too few samples, digital silence, or a spectrum that is not finite."""
    size = min(len(wave), 2048)
    if size < 16:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or infinite samples: answered below
        freqs, power = scipy.signal.welch(wave.astype(np.float64), fs=rate, nperseg=size)
    if not np.isfinite(power).all() or not power.any():  # no peak to measure from: nothing passes a threshold
        return 0.0
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
