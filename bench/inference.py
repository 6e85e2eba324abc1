"""Inference: ONNX Runtime against torch eager on the same model and the same 2-s windows."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from auscult import audio
from auscult.model import ScreeningNet, export_onnx
from auscult.resources import available_cpus
from auscult.serving.runtime import Predictor
from bench.common import best_rate, paired_latencies


def run(iterations: int = 200, batch: int = 32) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(available_cpus())  # both runtimes get every core
    model = ScreeningNet().eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, path)
        predictor = Predictor(path.read_bytes(), "bench")
    size = int(audio.WINDOW_S * audio.SAMPLE_RATE)
    rng = np.random.default_rng(0)
    single = (0.1 * rng.standard_normal((1, size))).astype(np.float32)
    many = (0.1 * rng.standard_normal((batch, size))).astype(np.float32)
    figures: dict = {"window_s": audio.WINDOW_S, "batch": batch, "torch_threads": torch.get_num_threads()}
    with torch.inference_mode():
        single_t, many_t = torch.from_numpy(single), torch.from_numpy(many)
        figures["torch_b1"], figures["onnx_b1"] = paired_latencies(
            lambda: model(single_t), lambda: predictor.windows_scores(single), iterations
        )
        figures["torch_b32"], figures["onnx_b32"] = paired_latencies(
            lambda: model(many_t), lambda: predictor.windows_scores(many), max(5, iterations // 10), block=5
        )
        figures["torch_b32_clips_per_s"] = best_rate(lambda: (model(many_t), batch)[1], 5)
        figures["onnx_b32_clips_per_s"] = best_rate(lambda: (predictor.windows_scores(many), batch)[1], 5)
    figures["torch_b1_clips_per_s"] = 1000 / figures["torch_b1"]["p50_ms"]
    figures["onnx_b1_clips_per_s"] = 1000 / figures["onnx_b1"]["p50_ms"]
    figures["ratio_onnx_over_torch_b1"] = figures["onnx_b1_clips_per_s"] / figures["torch_b1_clips_per_s"]
    figures["ratio_onnx_over_torch_b32"] = figures["onnx_b32_clips_per_s"] / figures["torch_b32_clips_per_s"]
    return figures
