"""GPU: training throughput, the front end, and ONNX Runtime's CUDA provider, each against the CPU in the same run.

Runs where ``torch.cuda.is_available()``; elsewhere the full run records why it was skipped. The quick mode runs
the same code on the CPU so that it keeps working on machines without a GPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchaudio

from auscult import audio
from auscult.model import LogMel, ModelConfig, ScreeningNet, export_onnx
from bench.common import best_rate, latencies
from bench.frontend import CLIP_S, SOURCE_RATE, clips


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_rate(device: torch.device, batch: int, steps: int) -> float:
    """Training windows per second: forward, backward and an optimiser step on random 2-s windows."""
    torch.manual_seed(0)
    model = ScreeningNet().to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    windows = 0.1 * torch.randn(batch, int(audio.WINDOW_S * audio.SAMPLE_RATE), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)

    def run() -> int:
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model.logits(windows), labels).backward()
            optimiser.step()
        _synchronize(device)
        return steps * batch

    run()  # warm-up: kernel selection, allocator
    return best_rate(run, 3)


def front_end_rate(device: torch.device, count: int, batch: int) -> float:
    """5-s 44.1 kHz clips per second through torchaudio's resampler and the model's log-mel, on ``device``."""
    data = torch.from_numpy(np.stack(clips(count))).to(device)
    resample = torchaudio.transforms.Resample(SOURCE_RATE, audio.SAMPLE_RATE).to(device)
    front_end = LogMel(ModelConfig()).to(device)

    def run() -> int:
        with torch.inference_mode():
            for start in range(0, count, batch):
                front_end(resample(data[start : start + batch]))
        _synchronize(device)
        return count

    run()
    return best_rate(run, 3)


def onnx_rates(provider: str, path: Path, batch: int, iterations: int) -> dict:
    session = ort.InferenceSession(str(path), providers=[provider])
    rng = np.random.default_rng(0)
    size = int(audio.WINDOW_S * audio.SAMPLE_RATE)
    single = (0.1 * rng.standard_normal((1, size))).astype(np.float32)
    many = (0.1 * rng.standard_normal((batch, size))).astype(np.float32)
    b1 = latencies(lambda: session.run(None, {"waveform": single}), iterations)
    return {
        "b1": b1,
        "b1_clips_per_s": 1000 / b1["p50_ms"],
        "batch_clips_per_s": best_rate(lambda: (session.run(None, {"waveform": many}), batch)[1], 5),
    }


def run(quick: bool = False) -> dict:
    cuda = torch.cuda.is_available()
    if not cuda and not quick:
        return {"skipped": "no CUDA device here (torch.cuda.is_available() is False)"}
    device = torch.device("cuda" if cuda else "cpu")
    batch, steps = (4, 1) if quick else (64, 20)
    figures: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu (quick mode: the code path, not a figure)",
        "batch": batch,
        "train_windows_per_s": training_rate(device, batch, steps),
        "train_cpu_windows_per_s": training_rate(torch.device("cpu"), batch, max(1, steps // 10)),
        "front_end_clips_per_s": front_end_rate(device, 4 if quick else 256, 4 if quick else 64),
        "front_end_clip_s": CLIP_S,
    }
    figures["ratio_train_over_cpu"] = figures["train_windows_per_s"] / figures["train_cpu_windows_per_s"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(ScreeningNet().eval(), path)
        iterations = 5 if quick else 300
        figures["onnx_cpu"] = onnx_rates("CPUExecutionProvider", path, batch, iterations)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            figures["onnx_cuda"] = onnx_rates("CUDAExecutionProvider", path, batch, iterations)
            figures["ratio_onnx_cuda_over_cpu_batch"] = (
                figures["onnx_cuda"]["batch_clips_per_s"] / figures["onnx_cpu"]["batch_clips_per_s"]
            )
        else:
            figures["onnx_cuda"] = {"skipped": "this onnxruntime build has no CUDA provider (onnxruntime-gpu has)"}
    return figures
