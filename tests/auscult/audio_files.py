"""Audio files made by the tests themselves, so that no binary is committed: the formats phones upload, encoded
with PyAV, and hostile files made by patching the headers of small valid ones."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import soundfile as sf

from auscult import audio

# format -> (PyAV muxer, encoder, sample rate): what browsers, iPhones and Android phones upload.
PHONE = {
    "webm": ("webm", "libopus", 48_000),  # COUGHVID, a browser's MediaRecorder
    "m4a": ("ipod", "aac", 44_100),  # iOS
    "3gp": ("3gp", "libopencore_amrnb", 8_000),  # Android's voice recorder
    "amr": ("amr", "libopencore_amrnb", 8_000),
}


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None], channels, axis=1)


def cough(rate: int, seed: int = 0) -> np.ndarray:
    """A 1 s noise burst between two 0.25 s silences, mono (frames, 1): a recording curate keeps."""
    rng = np.random.default_rng(seed)
    burst = 0.3 * rng.standard_normal(rate) * np.hanning(rate)
    return np.concatenate([np.zeros(rate // 4), burst, np.zeros(rate // 4)]).astype(np.float32)[:, None]


def libsndfile_bytes(wave: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


class _WriteOnly:
    """A stream the muxer cannot seek back in, as a browser's MediaRecorder writes: no duration in the header."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)


def phone_bytes(wave: np.ndarray, fmt: str) -> bytes:
    """``wave`` (frames, channels) at the format's rate, encoded as ``fmt`` the way phones do (see PHONE)."""
    muxer, codec, rate = PHONE[fmt]
    return encoded(wave, rate, muxer, codec)


def encoded(wave: np.ndarray, rate: int, muxer: str, codec: str) -> bytes:
    """``wave`` (frames, channels) encoded with PyAV's ``codec`` in a ``muxer`` container."""
    layout = "mono" if wave.shape[1] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave.T), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def long_webm(seconds: int, with_duration: bool, layout: str = "mono") -> bytes:
    """``seconds`` of Opus in WebM, made by repeating the packets of one encoded second (quick to make, slow to
    decode in full); without a duration in its header when ``with_duration`` is false. ``layout`` is FFmpeg's
    channel layout ("mono", "stereo", "7.1")."""
    sink = io.BytesIO() if with_duration else _WriteOnly()
    channels = av.AudioLayout(layout).nb_channels
    with av.open(sink, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000, layout=layout)
        wave = np.ascontiguousarray(np.repeat(cough(48_000)[:48_000].T, channels, axis=0))
        frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = 48_000, 0
        packets = [(bytes(p), p.pts, p.duration, p.time_base) for p in stream.encode(frame)]
        step = packets[-1][1] + packets[-1][2] - packets[0][1]
        for second in range(seconds):
            for data, pts, duration, time_base in packets:
                packet = av.Packet(data)
                packet.pts = packet.dts = pts + second * step
                packet.duration, packet.time_base, packet.stream = duration, time_base, stream
                container.mux(packet)
    return sink.getvalue() if with_duration else sink.buffer.getvalue()


def constant_flac(seconds: int, rate: int, channels: int) -> bytes:
    """A FLAC of a constant signal: a few bytes a second however many samples it holds (encoded a second at a
    time, so that making it never holds them all)."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as file:
        second = np.full((rate, channels), 0.25, dtype=np.float32)
        for _ in range(seconds):
            file.write(second)
    return buffer.getvalue()


def flac_claiming(frames: int, seconds: float = 1.0) -> bytes:
    """A valid FLAC of ``seconds`` whose STREAMINFO says it holds ``frames`` frames (36 bits; 0 means unknown)."""
    data = bytearray(libsndfile_bytes(tone(seconds, 16_000), 16_000, "FLAC"))
    # fLaC, a 4-byte block header, then STREAMINFO: 10 bytes of block and frame sizes, then 64 bits of which
    # the last 36 are the total number of frames.
    field = int.from_bytes(data[18:26], "big")
    data[18:26] = ((field & ~(2**36 - 1)) | frames).to_bytes(8, "big")
    return bytes(data)


def wav_patched(channels: int | None = None, rate: int | None = None, data_bytes: int | None = None) -> bytes:
    """A canonical 1 s 16 kHz WAV (audio.encode_wav) with header fields replaced."""
    data = bytearray(audio.encode_wav(tone(1.0, 16_000)[:, 0]))
    if channels is not None:
        data[22:24] = struct.pack("<H", channels)
    if rate is not None:
        data[24:28] = struct.pack("<I", rate)
    if data_bytes is not None:
        data[4:8] = struct.pack("<I", min(2**32 - 1, 36 + data_bytes))
        data[40:44] = struct.pack("<I", data_bytes)
    return bytes(data)


def float_wav(*special: float) -> bytes:
    """A 1 s float WAV with ``special`` values (NaN, infinities) among its samples."""
    wave = tone(1.0, 16_000)
    wave[100 : 100 + len(special), 0] = special
    return libsndfile_bytes(wave, 16_000, "WAV", "FLOAT")
