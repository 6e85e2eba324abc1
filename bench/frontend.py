"""Front end: resample + log-mel, ours (scipy polyphase + the model's torchaudio layer) against librosa,
on the same clips; the whole prep path from encoded files; and log-mel against a FLOP bound."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from auscult import audio
from auscult.model import LogMel, ModelConfig
from bench.common import best_rate

CLIP_S = 5.0
SOURCE_RATE = 44_100


def clips(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(CLIP_S * SOURCE_RATE)) / SOURCE_RATE
    return [
        (0.1 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)).astype(np.float32)
        for _ in range(count)
    ]


def librosa_logmel(wave: np.ndarray, config: ModelConfig) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=audio.SAMPLE_RATE,
        n_fft=config.n_fft,
        win_length=400,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=50.0,
        power=2.0,
    )
    return librosa.power_to_db(mel + 1e-5)


def peak_flops() -> float:
    """Measured float32 matmul FLOP/s of this machine (the best of a few 1024^3 products)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * 1024**3 / (time.perf_counter() - started))
    return best


def logmel_flops(samples: int, config: ModelConfig) -> float:
    """FFT (real, 2.5 N log2 N) + power + mel matrix FLOPs for one clip."""
    frames = samples // config.hop_length + 1
    bins = config.n_fft // 2 + 1
    fft = 2.5 * config.n_fft * np.log2(config.n_fft)
    return frames * (fft + 3 * bins + 2 * bins * config.n_mels)


def run(count: int = 64, batch: int = 32, files: list[Path] | None = None) -> dict:
    import librosa

    config = ModelConfig()
    front_end = LogMel(config).eval()
    data = clips(count)

    def ours_resample() -> int:
        for clip in data:
            audio.resample(clip, SOURCE_RATE)
        return len(data)

    resampled = [audio.resample(clip, SOURCE_RATE) for clip in data]
    stacked = torch.from_numpy(np.stack(resampled))

    def ours_logmel() -> int:
        with torch.inference_mode():
            for start in range(0, len(stacked), batch):
                front_end(stacked[start : start + batch])
        return len(stacked)

    def ours_both() -> int:
        with torch.inference_mode():
            for start in range(0, len(data), batch):
                front_end(
                    torch.from_numpy(np.stack([audio.resample(c, SOURCE_RATE) for c in data[start : start + batch]]))
                )
        return len(data)

    def librosa_resample() -> int:
        for clip in data:
            librosa.resample(clip, orig_sr=SOURCE_RATE, target_sr=audio.SAMPLE_RATE)
        return len(data)

    def librosa_logmel_only() -> int:
        for wave in resampled:
            librosa_logmel(wave, config)
        return len(resampled)

    def librosa_both() -> int:
        for clip in data:
            librosa_logmel(librosa.resample(clip, orig_sr=SOURCE_RATE, target_sr=audio.SAMPLE_RATE), config)
        return len(data)

    librosa_both()  # first call compiles numba kernels; not what a steady pipeline pays
    figures = {
        "clips": count,
        "clip_seconds": CLIP_S,
        "source_rate": SOURCE_RATE,
        "ours_resample_clips_per_s": best_rate(ours_resample),
        "ours_logmel_clips_per_s": best_rate(ours_logmel),
        "ours_clips_per_s": best_rate(ours_both),
        "librosa_resample_clips_per_s": best_rate(librosa_resample),
        "librosa_logmel_clips_per_s": best_rate(librosa_logmel_only),
        "librosa_clips_per_s": best_rate(librosa_both),
    }
    figures["ratio_ours_over_librosa"] = figures["ours_clips_per_s"] / figures["librosa_clips_per_s"]
    peak = peak_flops()
    achieved = logmel_flops(int(CLIP_S * audio.SAMPLE_RATE), config) * figures["ours_logmel_clips_per_s"]
    figures.update(
        {
            "peak_matmul_gflops": peak / 1e9,
            "logmel_gflops": achieved / 1e9,
            "logmel_percent_of_peak": 100 * achieved / peak,
        }
    )
    if files:
        figures.update(prep_path(files, front_end))
    return figures


def _decodes(data: bytes) -> bool:
    try:
        audio.decode(data)
    except audio.DecodeError:
        return False
    return True


def prep_path(files: list[Path], front_end: LogMel) -> dict:
    """Encoded file -> 16 kHz log-mel windows: our prep path against librosa.load + melspectrogram."""
    import librosa

    blobs = [path.read_bytes() for path in files]
    blobs = [data for data in blobs if _decodes(data)]  # what curation leaves for prep
    config = ModelConfig()

    def ours() -> int:
        with torch.inference_mode():
            for data in blobs:
                decoded = audio.decode(data)
                front_end(torch.from_numpy(audio.windows(audio.prepare(decoded.samples, decoded.sample_rate))))
        return len(blobs)

    def theirs() -> int:
        for data in blobs:
            wave, _ = librosa.load(io.BytesIO(data), sr=audio.SAMPLE_RATE, mono=True)
            librosa_logmel(wave, config)
        return len(blobs)

    theirs()
    kinds = sorted({Path(f).suffix.lstrip(".") for f in files})
    ours_rate, theirs_rate = best_rate(ours, 2), best_rate(theirs, 2)
    seconds = sum(sf.info(io.BytesIO(b)).duration for b in blobs[:50]) / min(len(blobs), 50)
    return {
        "prep_files": len(blobs),
        "prep_formats": ",".join(kinds),
        "prep_mean_file_s": seconds,
        "prep_ours_files_per_s": ours_rate,
        "prep_librosa_files_per_s": theirs_rate,
        "prep_ratio_ours_over_librosa": ours_rate / theirs_rate,
    }
