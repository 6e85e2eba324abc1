"""train: fit the screening network on the training windows; keep the epoch that does best on validation."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from auscult import audio, audit, metrics
from auscult import model as screening_model
from auscult.errors import InputError
from auscult.model import ModelConfig, ScreeningNet
from auscult.progress import Note, Tracker, emit
from auscult.resources import available_cpus
from auscult.stages.prep import Prepared, SplitWindows


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    gain_jitter_db: float = 10.0  # random level changes, so the model does not key on loudness
    seed: int = 0
    # When the audit finds the recording channel predictive: cap the front end and augment (ChannelGuard).
    guard_channel: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)


CHECKPOINT_FILE = "model.pt"
HISTORY_FILE = "history.json"
# The front end is never capped below this: the cough's own sound lies under it.
MIN_BAND_HZ = 2_000.0


@dataclass(frozen=True)
class ChannelGuard:
    """How training was kept from learning the recording channel: the properties that betrayed it and the front
    end's upper edge (channel augmentation is on whenever there is a guard)."""

    properties: tuple[str, ...]
    f_max_hz: float

    def describe(self) -> str:
        return (
            f"{', '.join(audit.name(p) for p in self.properties)} alone predicted the label on the training "
            f"participants: the front end hears "
            f"nothing above {self.f_max_hz:.0f} Hz (the narrowest band in training) and training varied the "
            "channel (band limit, noise, level, 8-bit mu-law coding)"
        )


def channel_guard(found: pd.DataFrame, training: pd.DataFrame) -> ChannelGuard | None:
    """A guard when the audit (``found``) flags a property of the recording channel, else None. The upper edge is
    the narrowest band among the ``training`` recordings: half the lowest sample rate, or the estimated bandwidth
    that all but 5% of them exceed, if lower (never below :data:`MIN_BAND_HZ`)."""
    flagged = tuple(found.loc[found["flagged"] & found["property"].isin(audit.CHANNEL), "property"])
    if not flagged:
        return None
    band = min(float(training["sample_rate"].min()) / 2, audio.SAMPLE_RATE / 2)
    bandwidths = training["bandwidth_hz"].dropna().astype(float)
    if len(bandwidths):
        band = min(band, float(np.percentile(bandwidths, 5)))
    return ChannelGuard(flagged, max(MIN_BAND_HZ, band))


class ChannelAugment(nn.Module):
    """Training-time channel variation, in the manner of ``torchaudio.transforms``: each window is, with
    probability ``p`` each, band-limited below a random edge, given noise at a random SNR, and coded as 8-bit
    mu-law (a telephone codec). Seeded through ``generator``; the identity in eval mode."""

    def __init__(self, f_max_hz: float, p: float = 0.3, snr_db: tuple[float, float] = (20.0, 50.0)):
        super().__init__()
        self.f_max_hz, self.p, self.snr_db = f_max_hz, p, snr_db

    def forward(
        self, batch: torch.Tensor, generator: torch.Generator, part: slice = slice(None), total: int | None = None
    ) -> torch.Tensor:
        """``batch`` is rows ``part`` of a batch of ``total`` (a data-parallel worker's share): the draws are made for
        the whole batch and sliced, so that the workers of one batch augment it as one worker would."""
        if not self.training:
            return batch
        length = batch.shape[1]
        count = len(batch) if total is None else total

        def chosen() -> torch.Tensor:
            return (torch.rand(count, generator=generator) < self.p)[part][:, None]

        spectrum = torch.fft.rfft(batch)
        freqs = torch.fft.rfftfreq(length, 1 / audio.SAMPLE_RATE)
        edge = MIN_BAND_HZ + torch.rand(count, 1, generator=generator)[part] * max(0.0, self.f_max_hz - MIN_BAND_HZ)
        limited = torch.fft.irfft(spectrum * (freqs[None, :] <= edge), n=length)
        batch = torch.where(chosen(), limited, batch)
        level = batch.square().mean(dim=1, keepdim=True).sqrt()
        snr = self.snr_db[0] + torch.rand(count, 1, generator=generator)[part] * (self.snr_db[1] - self.snr_db[0])
        noise = torch.randn((count, length), generator=generator)[part] * level * 10 ** (-snr / 20)
        batch = torch.where(chosen(), batch + noise, batch)
        mu = 255.0
        peak = batch.abs().amax(dim=1, keepdim=True).clamp_min(1e-6)
        coded = torch.sign(batch / peak) * torch.log1p(mu * (batch / peak).abs()) / np.log1p(mu)
        coded = torch.round(coded * 127) / 127
        decoded = torch.sign(coded) * torch.expm1(coded.abs() * np.log1p(mu)) / mu * peak
        return torch.where(chosen(), decoded, batch)


@dataclass
class TrainResult:
    model: ScreeningNet
    history: list[dict]  # per epoch: loss, validation AUROC (recording level), seconds
    best_epoch: int
    guard: ChannelGuard | None = None

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        screening_model.save(self.model, folder / CHECKPOINT_FILE)
        guard = asdict(self.guard) if self.guard else None
        (folder / HISTORY_FILE).write_text(
            json.dumps({"best_epoch": self.best_epoch, "epochs": self.history, "channel_guard": guard})
        )

    @classmethod
    def load(cls, folder: str | Path) -> TrainResult:
        folder = Path(folder)
        history = json.loads((folder / HISTORY_FILE).read_text())
        guard = history.get("channel_guard")
        return cls(
            screening_model.load(folder / CHECKPOINT_FILE),
            history["epochs"],
            history["best_epoch"],
            ChannelGuard(**{**guard, "properties": tuple(guard["properties"])}) if guard else None,
        )


def predict(model: nn.Module, windows: SplitWindows, batch_size: int = 64) -> np.ndarray:
    """Positive-class probability of every window (on the device the model is on)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size])).to(device)
            out.append(model(batch)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def per_recording(index: pd.DataFrame, window_scores: np.ndarray) -> pd.DataFrame:
    """Average window scores per recording: recording_id, participant_id, label, score."""
    frame = index.assign(score=window_scores)
    grouped = frame.groupby("recording_id", sort=True)
    return grouped.agg(
        participant_id=("participant_id", "first"), label=("label", "first"), score=("score", "mean")
    ).reset_index()


# How long a worker waits for the others: the first validates alone after each epoch while they wait.
GROUP_TIMEOUT = timedelta(hours=2)


class _Logits(nn.Module):
    """The network's logits as its forward pass: DistributedDataParallel averages gradients only through it."""

    def __init__(self, net: ScreeningNet):
        super().__init__()
        self.net = net

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.logits(batch)


def train(
    prepared: Prepared,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[str], None] = emit,
    workers: int = 1,
) -> TrainResult:
    """Train on this machine: in this process, or, with ``workers`` above 1, data-parallel in that many processes
    (DistributedDataParallel over gloo, each on its share of the cores and of every batch). With several workers
    the progress lines are the first worker's, through :func:`auscult.progress.emit`."""
    check_workers(workers, config)
    if workers == 1:
        result = fit(prepared, config, progress, device=torch.device("cuda") if torch.cuda.is_available() else None)
        assert result is not None
        return result
    import tempfile

    import torch.multiprocessing as mp

    threads = max(1, available_cpus() // workers)
    with tempfile.TemporaryDirectory() as scratch:
        # Each process rejoins the others through this address; spawn raises if any of them fails.
        address = f"tcp://127.0.0.1:{_free_port()}"
        mp.spawn(_local_worker, args=(workers, address, prepared, config, threads, scratch), nprocs=workers)
        return TrainResult.load(scratch)


def check_workers(workers: int, config: TrainConfig) -> None:
    """Every worker must get rows of every batch."""
    if not 1 <= workers <= config.batch_size:
        raise InputError(f"workers must be from 1 to the batch size, {config.batch_size} (got {workers})")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _local_worker(
    rank: int, world: int, address: str, prepared: Prepared, config: TrainConfig, threads: int, out: str
) -> None:
    import torch.distributed as dist

    # A GPU each when the machine has enough (NCCL), else the CPU (gloo).
    cuda = torch.cuda.device_count() >= world
    device = torch.device("cuda", rank) if cuda else None
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method=address, rank=rank, world_size=world, timeout=GROUP_TIMEOUT)
    try:
        result = fit(prepared, config, emit, rank=rank, world=world, threads=threads, device=device)
        if result is not None:
            result.save(out)
    finally:
        dist.destroy_process_group()


def fit(
    prepared: Prepared,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[str], None] = emit,
    rank: int = 0,
    world: int = 1,
    threads: int | None = None,
    device: torch.device | None = None,
) -> TrainResult | None:
    """The training loop of one worker of ``world`` (a process group of that size must be initialised when it is
    above 1). Every worker draws the same order of training windows and the same augmentation each epoch and
    trains on every ``world``-th row of each batch; DistributedDataParallel averages their gradients, so a step is
    one worker's step on the whole batch but for batch normalisation, which sees each worker's share. The first
    worker validates each epoch and returns the result; the others return None."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(threads or available_cpus())
    device = device or torch.device("cpu")
    # Every worker draws the same order and augmentation and takes its rows of each batch.
    rng = np.random.default_rng(config.seed)
    train_windows, train_index = prepared.split("train")
    validation_windows, validation_index = prepared.split("validation")
    labels = train_index["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise InputError(
            f"training needs both classes, and the training split has {len(labels)} windows of "
            f"{'one class' if len(labels) else 'none'}: add labelled recordings of each class"
        )
    guard = channel_guard(prepared.audit, prepared.training_recordings) if config.guard_channel else None
    model = ScreeningNet(replace(config.model, f_max=guard.f_max_hz) if guard else config.model).to(device)
    augment = ChannelAugment(guard.f_max_hz) if guard else None
    generator = torch.Generator().manual_seed(config.seed)
    if guard and rank == 0:
        progress(str(Note("train", guard.describe())))
    # Weight classes inversely to their frequency so the minority class is not ignored.
    counts = np.bincount(labels, minlength=config.model.n_classes)
    weights = torch.tensor(len(labels) / (config.model.n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    weights = weights.to(device)
    # One worker: the weighted mean of the batch. Several: each its share's weighted sum over the whole batch's
    # weight, times the workers (DDP averages their gradients): together, the weighted mean of the whole batch.
    loss_fn = nn.CrossEntropyLoss(weight=weights, reduction="mean" if world == 1 else "sum")
    trainable: nn.Module = _Logits(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trainable = DistributedDataParallel(trainable, device_ids=[device.index] if device.type == "cuda" else None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    batches = int(np.ceil(len(labels) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.epochs * batches
    )
    share = slice(rank, None, world)
    history, best_auroc, best_state, best_epoch = [], -1.0, None, 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(labels))
        total, seen = 0.0, 0
        tracker = Tracker(
            "train", batches, "batches", progress if rank == 0 else _silent, label=f"epoch {epoch}/{config.epochs}"
        )
        for batch_number, start in enumerate(range(0, len(order), config.batch_size), start=1):
            pick = np.sort(order[start : start + config.batch_size])
            gains = 10 ** (torch.from_numpy(rng.uniform(-1, 1, len(pick))).float() * config.gain_jitter_db / 20)
            shifts = rng.integers(0, train_windows.shape[1], len(pick))
            if len(pick) < world:  # the epoch's last batch, too small to share: every worker skips it alike
                continue
            mine = pick[share]
            batch = torch.from_numpy(np.asarray(train_windows[mine]))
            batch = torch.stack(
                [torch.roll(w, int(s)) for w, s in zip(batch * gains[share][:, None], shifts[share], strict=True)]
            )
            if augment:
                batch = augment(batch, generator, share, len(pick))
            loss = loss_fn(trainable(batch.to(device)), torch.from_numpy(labels[mine]).to(device))
            if world > 1:
                loss = loss * world / weights[torch.from_numpy(labels[pick]).to(device)].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total, seen = total + loss.item() * len(mine), seen + len(mine)
            tracker(batch_number)
        if rank != 0:
            continue
        scores = per_recording(validation_index, predict(model, validation_windows))
        auroc = metrics.roc_auc(scores["label"].to_numpy(), scores["score"].to_numpy())
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": total / seen, "validation_auroc": auroc, "seconds": seconds})
        progress(
            str(
                Note(
                    "train",
                    f"epoch {epoch}/{config.epochs} loss {total / seen:.4f}, "
                    f"validation AUROC {auroc:.3f} ({seconds:.1f} s)" + (f", {world} workers" if world > 1 else ""),
                )
            )
        )
        # Without a usable validation AUROC (too few recordings), keep the last epoch.
        if np.isnan(auroc) or auroc >= best_auroc:
            best_auroc = -1.0 if np.isnan(auroc) else auroc
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
    if rank != 0:
        return None
    model.load_state_dict(best_state)
    return TrainResult(model.cpu().eval(), history, best_epoch, guard)


def _silent(_: str) -> None:
    pass
