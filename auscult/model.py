"""The screening model: a torchaudio log-mel front end inside the network, so the exported ONNX graph
takes a raw 16 kHz waveform and returns class probabilities. No training/serving skew by construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchaudio
from torch import nn

from auscult.audio import SAMPLE_RATE


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 64
    n_fft: int = 512
    hop_length: int = 256
    channels: tuple[int, ...] = (16, 32, 48)
    dropout: float = 0.2
    n_classes: int = 2


class LogMel(nn.Module):
    """Waveform (batch, time) -> log-mel (batch, 1, mels, frames)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=config.n_fft,
            win_length=400,
            hop_length=config.hop_length,
            f_min=50.0,
            f_max=SAMPLE_RATE / 2,
            n_mels=config.n_mels,
            power=2.0,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # A floor well below 16-bit noise: near-zero power (zero padding) would otherwise turn rounding
        # differences between runtimes into decibels.
        return self.to_db(self.mel(waveform) + 1e-5).unsqueeze(1)


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
    model.load_state_dict(saved["state"])
    return model.eval()


def export_onnx(model: ScreeningNet, path: str | Path, example_length: int = 2 * SAMPLE_RATE) -> None:
    """Export with the dynamo exporter: dynamic batch and time axes, input ``waveform``, output ``probabilities``."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    # Three 2x poolings need at least 8 frames.
    time = torch.export.Dim("time", min=8 * model.config.hop_length, max=SAMPLE_RATE * 600)
    example = torch.zeros(2, example_length)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        input_names=["waveform"],
        output_names=["probabilities"],
        dynamic_shapes={"waveform": {0: batch, 1: time}},
        verbose=False,
    )
    program.save(str(path))
