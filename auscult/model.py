"""The screening model: a log-mel front end (torchaudio's mel filterbank) inside the network, so the exported ONNX graph
takes a raw 16 kHz waveform and returns class probabilities. No training/serving skew by construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchaudio
from torch import nn

from auscult.audio import SAMPLE_RATE

# What ScreeningNet is, for the change-control plan: a change of architecture is a new family, and waits for a
# person's approval under the default plan. Change it whenever the architecture changes.
MODEL_FAMILY = "logmel-cnn-1"


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 64
    f_min: float = 50.0
    # The mel filterbank's upper edge (Hz). Nothing above it reaches the network, in any runtime: training
    # lowers it to the narrowest band in its data when the recording channel predicts the label.
    f_max: float = SAMPLE_RATE / 2
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 256
    channels: tuple[int, ...] = (16, 32, 48)
    dropout: float = 0.2
    n_classes: int = 2


POWER_DB_PER_LN = 10.0 / math.log(10.0)  # a power ratio in decibels: 10 * log10(x) == this * ln(x)


class LogMel(nn.Module):
    """Waveform (batch, time) -> log-mel (batch, 1, mels, frames), equal to torchaudio's
    ``MelSpectrogram(center=True, pad_mode="reflect", power=2)`` followed by ``AmplitudeToDB``.

    The short-time DFT is one strided convolution with a fixed windowed cos/sin basis, restricted to the
    bins the mel filterbank uses. That is more multiply-adds than an FFT, but they run as one GEMM in
    every runtime: ONNX Runtime's STFT kernel took 72% of the model's time, this takes a fraction of it.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        filterbank = torchaudio.functional.melscale_fbanks(
            n_freqs=config.n_fft // 2 + 1,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            sample_rate=SAMPLE_RATE,
        )
        used = torch.nonzero(filterbank.sum(dim=1) > 0).flatten()
        bins = torch.arange(int(used.min()), int(used.max()) + 1, dtype=torch.float64)
        # torch.stft centres a win_length window inside n_fft: only those samples enter the DFT. The DFT's time
        # origin within the frame changes each bin's phase, not its power, so the basis starts at the window.
        offset = (config.n_fft - config.win_length) // 2
        phase = 2 * torch.pi * torch.outer(torch.arange(config.win_length, dtype=torch.float64), bins) / config.n_fft
        window = torch.hann_window(config.win_length, periodic=True, dtype=torch.float64)[:, None]
        basis = torch.cat([window * torch.cos(phase), window * torch.sin(phase)], dim=1)  # (win_length, 2 * bins)
        self.register_buffer("basis", basis.T.unsqueeze(1).float().contiguous(), persistent=False)
        # Power = re^2 + im^2, so the filterbank stacked twice maps squared (re, im) straight to mel power.
        used_filterbank = filterbank[int(used.min()) : int(used.max()) + 1].T
        self.register_buffer("filterbank", torch.cat([used_filterbank, used_filterbank], dim=1), persistent=False)
        self.hop_length = config.hop_length
        self.padding = config.n_fft // 2 - offset

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(waveform.unsqueeze(1), (self.padding, self.padding), mode="reflect")
        spectrum = nn.functional.conv1d(padded, self.basis, stride=self.hop_length)  # (batch, 2 * bins, frames)
        power = torch.matmul(self.filterbank, spectrum * spectrum)  # (batch, mels, frames)
        # A floor well below 16-bit noise: near-zero power (zero padding) would otherwise turn rounding
        # differences between runtimes into decibels.
        return (POWER_DB_PER_LN * torch.log(power + 1e-5)).unsqueeze(1)


class ScreeningNet(nn.Module):
    """Log-mel front end, a compact CNN, and global pooling: any input length gives one answer."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.front_end = LogMel(config)
        self.input_norm = nn.BatchNorm2d(1)
        layers: list[nn.Module] = []
        previous = 1
        for width in config.channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(previous, config.n_classes))

    def logits(self, waveform: torch.Tensor) -> torch.Tensor:
        features = self.features(self.input_norm(self.front_end(waveform)))
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Class probabilities, as served."""
        return torch.softmax(self.logits(waveform), dim=-1)


def save(model: ScreeningNet, path: str | Path) -> None:
    torch.save({"config": asdict(model.config), "state": model.state_dict()}, path)


def load(path: str | Path) -> ScreeningNet:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    config = saved["config"]
    model = ScreeningNet(ModelConfig(**{**config, "channels": tuple(config["channels"])}))
    # The front end's constants follow from the config; checkpoints from before they stopped being saved
    # still carry torchaudio's window and filterbank.
    model.load_state_dict({k: v for k, v in saved["state"].items() if not k.startswith("front_end.")})
    return model.eval()


def export_onnx(
    model: ScreeningNet | LogMel,
    path: str | Path,
    example_length: int = 2 * SAMPLE_RATE,
    output_name: str = "probabilities",
) -> None:
    """Export with the dynamo exporter: dynamic batch and time axes, input ``waveform``, one named output
    (the model's ``probabilities``; the front end alone is exported for benchmarks)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    # Three 2x poolings need at least 8 frames.
    time = torch.export.Dim("time", min=8 * model.config.hop_length, max=SAMPLE_RATE * 600)
    example = torch.zeros(2, example_length)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        input_names=["waveform"],
        output_names=[output_name],
        dynamic_shapes={"waveform": {0: batch, 1: time}},
        verbose=False,
    )
    program.save(str(path))
