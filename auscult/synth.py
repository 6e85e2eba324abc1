"""A synthetic cohort, written in the on-disk shape of the Coswara dataset.

``combined_data.csv`` (id, covid_status, a = age, g = gender, device) plus one folder per participant with
``cough-heavy``, ``cough-shallow``, ``breathing-deep`` and ``breathing-shallow`` recordings. The classes
differ acoustically in a controlled way (``effect``): positive coughs resonate lower and carry a wet
low-frequency component, positive breathing carries a faint wheeze. Devices differ in sample rate,
channels, format and noise; a share of files is defective (silent, clipped, truncated, empty) and a share
of participants has no usable label, as real collections do. The same ``seed`` writes the same bytes.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import butter, sosfilt

from auscult import table

SOUNDS = ("cough-heavy", "cough-shallow", "breathing-deep", "breathing-shallow")
METADATA_FILE = "combined_data.csv"
# Beside the metadata: what makes ingest record the cohort's recordings as synthetic (origin "synthetic").
MARKER_FILE = "SYNTHETIC.md"
DATE_FOLDER = "20260101"


@dataclass(frozen=True)
class Device:
    name: str
    sample_rate: int
    channels: int
    file_format: str
    snr_db: float
    gain_db: float = 0.0
    lowpass_hz: float | None = None


DEVICES = (
    Device("iphone", 48_000, 1, "wav", 35.0),
    Device("android", 44_100, 1, "ogg", 25.0),
    Device("laptop", 16_000, 2, "flac", 20.0),
)
# A new, cheaper phone becomes popular after launch: narrow band, quiet and noisy. This is what
# production hears and what monitoring has to notice.
SHIFTED_DEVICES = (
    Device("budget-phone", 8_000, 1, "mp3", 12.0, gain_db=-14.0, lowpass_hz=3_400.0),
    Device("android", 44_100, 1, "ogg", 25.0),
)
# Two collection channels, as in covid19-cough: a narrow-band phone line and an app recording at 48 kHz.
CHANNELS = (
    Device("call-line", 8_000, 1, "wav", 20.0, gain_db=-6.0, lowpass_hz=3_400.0),
    Device("app", 48_000, 1, "ogg", 30.0),
)
POSITIVE_STATUSES = ("positive_mild", "positive_asymp", "positive_moderate")
NEGATIVE_STATUSES = ("healthy",)
UNUSABLE_STATUSES = ("under_validation", "postive")  # pending results, and a typo seen in real metadata
DEFECTS = ("silent", "clipped", "truncated", "empty")


@dataclass(frozen=True)
class CohortSpec:
    participants: int = 120
    seed: int = 0
    positive_fraction: float = 0.4
    effect: float = 0.3  # 0 makes the classes indistinguishable; 0.3 gives a test AUROC near 0.99
    defect_rate: float = 0.06
    unusable_label_rate: float = 0.03
    shifted: bool = False
    id_prefix: str = "P"
    # None: the usual device mix, whatever the label. A number c in [0, 1]: two channels (CHANNELS) tied to the
    # label, a positive recording through the call line with probability (1 + c) / 2, a negative (1 - c) / 2.
    confound: float | None = None


def _resonance(noise: np.ndarray, rate: int, centre: float, width: float) -> np.ndarray:
    low = max(30.0, centre - width / 2)
    high = min(rate / 2 * 0.95, centre + width / 2)
    return sosfilt(butter(2, [low, high], btype="band", fs=rate, output="sos"), noise)


def _cough(rng: np.random.Generator, rate: int, positive: bool, effect: float, strength: float) -> np.ndarray:
    pieces = [np.zeros(int(rate * rng.uniform(0.2, 0.4)))]
    for _ in range(int(rng.integers(2, 4))):
        length = int(rate * rng.uniform(0.25, 0.45))
        t = np.arange(length) / rate
        envelope = (1 - np.exp(-t / 0.008)) * np.exp(-t / rng.uniform(0.06, 0.11))
        centre = rng.normal(1500 - 750 * effect if positive else 1500, 180)
        burst = _resonance(rng.standard_normal(length), rate, max(centre, 250), 700)
        if positive:
            wet = sosfilt(butter(2, 300, btype="low", fs=rate, output="sos"), rng.standard_normal(length))
            burst = burst + 2.5 * effect * wet
        burst = strength * envelope * burst / (np.abs(burst).max() + 1e-9)
        pieces += [burst, np.zeros(int(rate * rng.uniform(0.12, 0.35)))]
    return np.concatenate(pieces)


def _breathing(rng: np.random.Generator, rate: int, positive: bool, effect: float, strength: float) -> np.ndarray:
    cycles = []
    for _ in range(2):
        length = int(rate * rng.uniform(1.0, 1.4))
        t = np.arange(length) / rate
        envelope = np.sin(np.pi * t / t[-1]) ** 2
        breath = _resonance(rng.standard_normal(length), rate, rng.uniform(700, 1000), 1400)
        breath = breath / (np.abs(breath).max() + 1e-9)
        if positive:
            wheeze = np.sin(2 * np.pi * rng.uniform(350, 600) * t) * 0.6 * effect
            breath = breath + wheeze
        cycles += [0.5 * strength * envelope * breath, np.zeros(int(rate * 0.2))]
    return np.concatenate([np.zeros(int(rate * 0.25)), *cycles])


def _through_device(rng: np.random.Generator, clean: np.ndarray, device: Device, level_db: float) -> np.ndarray:
    # Set by RMS, not by peak: a peak-normalised level would follow the sound's crest factor, and so the class,
    # and a recording's level would give away what only listening should find.
    signal = clean / (np.sqrt(np.mean(clean**2)) + 1e-12) * 10 ** ((level_db + device.gain_db) / 20)
    signal *= min(1.0, 0.9 / (np.abs(signal).max() + 1e-12))  # the rare loud one kept below full scale
    if device.lowpass_hz:
        signal = sosfilt(butter(4, device.lowpass_hz, fs=device.sample_rate, output="sos"), signal)
    signal_rms = np.sqrt(np.mean(signal**2))
    noise = rng.standard_normal(len(signal)) * signal_rms * 10 ** (-device.snr_db / 20)
    mono = signal + noise
    if device.channels == 1:
        return mono[:, None]
    return np.stack([mono, np.roll(mono, 3) * 0.9], axis=1)


def _apply_defect(rng: np.random.Generator, audio: np.ndarray, defect: str) -> np.ndarray:
    if defect == "silent":
        return rng.standard_normal(audio.shape) * 1e-5
    if defect == "clipped":
        return np.clip(audio * 40, -1.0, 1.0)
    return audio


def _encode(audio: np.ndarray, device: Device) -> bytes:
    buffer = io.BytesIO()
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}[device.file_format]
    sf.write(buffer, np.clip(audio, -1.0, 1.0), device.sample_rate, format=device.file_format.upper(), subtype=subtype)
    data = buffer.getvalue()
    return _with_serial(data, 0x61757363) if device.file_format == "ogg" else data


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = _OGG_CRC_TABLE[((crc >> 24) ^ byte) & 0xFF] ^ ((crc << 8) & 0xFFFFFFFF)
    return crc


_OGG_CRC_TABLE = [
    functools.reduce(lambda r, _: ((r << 1) ^ 0x04C11DB7 if r & 0x80000000 else r << 1) & 0xFFFFFFFF, range(8), i << 24)
    for i in range(256)
]


def _with_serial(data: bytes, serial: int) -> bytes:
    """The Ogg stream with a fixed serial number (libsndfile draws one at random), so that the same seed writes the
    same bytes: recording ids are content hashes, and the split follows them."""
    out, offset = bytearray(), 0
    while offset + 27 <= len(data) and data[offset : offset + 4] == b"OggS":
        segments = data[offset + 26]
        size = 27 + segments + sum(data[offset + 27 : offset + 27 + segments])
        page = bytearray(data[offset : offset + size])
        page[14:18] = struct.pack("<I", serial)
        page[22:26] = b"\0\0\0\0"
        page[22:26] = struct.pack("<I", _ogg_crc(page))
        out += page
        offset += size
    return bytes(out) + data[offset:]


def generate(folder: str | Path, spec: CohortSpec = CohortSpec()) -> dict[str, int]:
    """Write a cohort to ``folder``; return counts (participants, files, defective files, by class)."""
    rng = np.random.default_rng(spec.seed)
    root = Path(folder)
    day = root / DATE_FOLDER
    day.mkdir(parents=True, exist_ok=True)
    devices = SHIFTED_DEVICES if spec.shifted else DEVICES
    device_weights = (0.7, 0.3) if spec.shifted else (0.45, 0.35, 0.2)
    counts = {"participants": 0, "files": 0, "defective": 0, "positive": 0, "negative": 0, "unusable_label": 0}
    rows = []
    for index in range(spec.participants):
        pid = f"{spec.id_prefix}{spec.seed:02d}{index:04d}"
        positive = bool(rng.random() < spec.positive_fraction)
        if spec.confound is None:
            device = devices[int(rng.choice(len(devices), p=device_weights))]
        else:
            call_line = (1 + spec.confound) / 2 if positive else (1 - spec.confound) / 2
            device = CHANNELS[0] if rng.random() < call_line else CHANNELS[1]
        if rng.random() < spec.unusable_label_rate:
            status = str(rng.choice(UNUSABLE_STATUSES))
            counts["unusable_label"] += 1
        else:
            status = str(rng.choice(POSITIVE_STATUSES if positive else NEGATIVE_STATUSES))
            counts["positive" if positive else "negative"] += 1
        age = int(rng.integers(18, 80))
        sex = str(rng.choice(("male", "female")))
        rows.append({"id": pid, "covid_status": status, "a": age, "g": sex, "device": device.name})
        (day / pid).mkdir(exist_ok=True)
        strength = rng.uniform(0.6, 1.0)
        for sound in SOUNDS:
            make = _cough if sound.startswith("cough") else _breathing
            clean = make(rng, device.sample_rate, positive, spec.effect, strength)
            audio = _through_device(rng, clean, device, level_db=rng.uniform(-36, -22))
            defect = str(rng.choice(DEFECTS)) if rng.random() < spec.defect_rate else None
            data = _encode(_apply_defect(rng, audio, defect), device) if defect else _encode(audio, device)
            if defect == "truncated":
                data = data[: max(16, len(data) // 12)]
            elif defect == "empty":
                data = b""
            counts["defective"] += defect is not None
            (day / pid / f"{sound}.{device.file_format}").write_bytes(data)
            counts["files"] += 1
        counts["participants"] += 1
    table.write_csv(pd.DataFrame(rows, columns=["id", "covid_status", "a", "g", "device"]), root / METADATA_FILE)
    (root / MARKER_FILE).write_text(
        "Synthetic recordings written by `auscult generate`: tones and noise shaped like coughs and breaths. A model\n"
        "trained on them has learnt nothing about real coughs.\n"
    )
    return counts
