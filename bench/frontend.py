"""Front end: resample + log-mel, ours (libsoxr on every core + the model's log-mel layer in ONNX Runtime)
against librosa, on the same clips; the whole prep path from encoded files; and log-mel against a FLOP bound."""

from __future__ import annotations

import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

from auscult import audio
from auscult.model import LogMel, ModelConfig, export_onnx
from auscult.resources import available_cpus
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


def peak_flops(size: int = 2048, repeats: int = 8) -> float:
    """Float32 matmul FLOP/s on all cores: the best of torch, numpy and ONNX Runtime on size^3 products, a
    measured rate standing in for the hardware's peak (the three GEMMs differ by up to 2x here)."""
    from onnx import TensorProto, helper

    torch.set_num_threads(available_cpus())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    square = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", square[:2], square[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
    products = {
        "torch": lambda: torch.matmul(a_t, b_t),
        "numpy": lambda: a @ b,
        "onnxruntime": lambda: session.run(None, {"a": a, "b": b}),
    }
    best = 0.0
    for product in products.values():
        product()
        for _ in range(repeats):
            started = time.perf_counter()
            product()
            best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


def fft_logmel_flops(samples: int, config: ModelConfig) -> float:
    """The work an FFT-based log-mel needs for one clip: real FFT (2.5 N log2 N), power, mel matrix."""
    frames = samples // config.hop_length + 1
    bins = config.n_fft // 2 + 1
    fft = 2.5 * config.n_fft * np.log2(config.n_fft)
    return frames * (fft + 3 * bins + 2 * bins * config.n_mels)


def gemm_logmel_flops(samples: int, config: ModelConfig) -> float:
    """The work our log-mel executes for one clip: the DFT as a strided convolution, then the mel matrix."""
    front_end = LogMel(config)
    frames = samples // config.hop_length + 1
    return frames * 2 * (front_end.basis.numel() + front_end.filterbank.numel())


def onnx_front_end(config: ModelConfig) -> ort.InferenceSession:
    """The model's log-mel front end alone, exported the way the model is, in ONNX Runtime."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "front_end.onnx"
        export_onnx(LogMel(config).eval(), path, output_name="log_mel")
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(count: int = 64, batch: int = 32, files: list[Path] | None = None) -> dict:
    import librosa

    config = ModelConfig()
    torch.set_num_threads(available_cpus())  # explicit: torch's default varies with how it was started
    torch_front_end = LogMel(config).eval()
    session = onnx_front_end(config)
    data = clips(count)
    pool = ThreadPoolExecutor(available_cpus())  # as prep resamples: libsoxr releases the GIL

    def resample_all(chunk: list[np.ndarray]) -> np.ndarray:
        return np.stack(list(pool.map(lambda clip: audio.resample(clip, SOURCE_RATE), chunk)))

    resampled = resample_all(data)

    def ours_resample() -> int:
        resample_all(data)
        return len(data)

    def ours_logmel_onnx() -> int:
        for start in range(0, len(resampled), batch):
            session.run(None, {"waveform": resampled[start : start + batch]})
        return len(resampled)

    def ours_logmel_torch() -> int:
        with torch.inference_mode():
            for start in range(0, len(resampled), batch):
                torch_front_end(torch.from_numpy(resampled[start : start + batch]))
        return len(resampled)

    def ours_both() -> int:
        for start in range(0, len(data), batch):
            session.run(None, {"waveform": resample_all(data[start : start + batch])})
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
        "threads": available_cpus(),
        "ours_resample_clips_per_s": best_rate(ours_resample),
        "ours_logmel_clips_per_s": best_rate(ours_logmel_onnx),
        "ours_logmel_torch_clips_per_s": best_rate(ours_logmel_torch),
        "ours_clips_per_s": best_rate(ours_both),
        "librosa_resample_clips_per_s": best_rate(librosa_resample),
        "librosa_logmel_clips_per_s": best_rate(librosa_logmel_only),
        "librosa_clips_per_s": best_rate(librosa_both),
    }
    pool.shutdown()
    figures["ratio_ours_over_librosa"] = figures["ours_clips_per_s"] / figures["librosa_clips_per_s"]
    # librosa resamples with the same libsoxr at the same quality: our resampling alone bounds the ratio.
    figures["ratio_bound_by_resampling"] = figures["ours_resample_clips_per_s"] / figures["librosa_clips_per_s"]
    peak = peak_flops()
    samples = int(CLIP_S * audio.SAMPLE_RATE)
    useful = fft_logmel_flops(samples, config) * figures["ours_logmel_clips_per_s"]
    executed = gemm_logmel_flops(samples, config) * figures["ours_logmel_clips_per_s"]
    figures.update(
        {
            "peak_matmul_gflops": peak / 1e9,
            "logmel_gflops": useful / 1e9,
            "logmel_percent_of_peak": 100 * useful / peak,
            "logmel_executed_gflops": executed / 1e9,
            "logmel_executed_percent_of_peak": 100 * executed / peak,
        }
    )
    if files:
        figures.update(prep_path(files))
    return figures


def _decodes(data: bytes) -> bool:
    try:
        audio.decode(data)
    except audio.DecodeError:
        return False
    return True


def prep_path(files: list[Path]) -> dict:
    """Encoded file -> 16 kHz log-mel windows: our prep path (the prep stage's decode, resample, trim and windows
    on its threads, then the model's front end in ONNX Runtime) against librosa.load + melspectrogram."""
    import librosa

    blobs = [path.read_bytes() for path in files]
    blobs = [data for data in blobs if _decodes(data)]  # what curation leaves for prep
    config = ModelConfig()
    session = onnx_front_end(config)

    def windows_of(data: bytes) -> np.ndarray:
        decoded = audio.decode(data)
        return audio.windows(audio.prepare(decoded.samples, decoded.sample_rate))

    def ours() -> int:
        with ThreadPoolExecutor(available_cpus()) as pool:
            for cut in pool.map(windows_of, blobs):
                session.run(None, {"waveform": cut})
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
