"""train: fit the screening network on the training windows; keep the epoch that does best on validation."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from auscult import metrics
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
    model: ModelConfig = field(default_factory=ModelConfig)


CHECKPOINT_FILE = "model.pt"
HISTORY_FILE = "history.json"


@dataclass
class TrainResult:
    model: ScreeningNet
    history: list[dict]  # per epoch: loss, validation AUROC (recording level), seconds
    best_epoch: int

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        screening_model.save(self.model, folder / CHECKPOINT_FILE)
        (folder / HISTORY_FILE).write_text(json.dumps({"best_epoch": self.best_epoch, "epochs": self.history}))

    @classmethod
    def load(cls, folder: str | Path) -> TrainResult:
        folder = Path(folder)
        history = json.loads((folder / HISTORY_FILE).read_text())
        return cls(screening_model.load(folder / CHECKPOINT_FILE), history["epochs"], history["best_epoch"])


def predict(model: nn.Module, windows: SplitWindows, batch_size: int = 64) -> np.ndarray:
    """Positive-class probability of every window."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
            out.append(model(batch)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def per_recording(index: pd.DataFrame, window_scores: np.ndarray) -> pd.DataFrame:
    """Average window scores per recording: recording_id, participant_id, label, score."""
    frame = index.assign(score=window_scores)
    grouped = frame.groupby("recording_id", sort=True)
    return grouped.agg(
        participant_id=("participant_id", "first"), label=("label", "first"), score=("score", "mean")
    ).reset_index()


def train(
    prepared: Prepared, config: TrainConfig = TrainConfig(), progress: Callable[[str], None] = emit
) -> TrainResult:
    torch.manual_seed(config.seed)
    torch.set_num_threads(available_cpus())
    rng = np.random.default_rng(config.seed)
    train_windows, train_index = prepared.split("train")
    validation_windows, validation_index = prepared.split("validation")
    labels = train_index["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise InputError(
            f"training needs both classes, and the training split has {len(labels)} windows of "
            f"{'one class' if len(labels) else 'none'}: add labelled recordings of each class"
        )
    model = ScreeningNet(config.model)
    # Weight classes inversely to their frequency so the minority class is not ignored.
    counts = np.bincount(labels, minlength=config.model.n_classes)
    weights = torch.tensor(len(labels) / (config.model.n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    batches = int(np.ceil(len(labels) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.epochs * batches
    )
    history, best_auroc, best_state, best_epoch = [], -1.0, None, 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(labels))
        total = 0.0
        tracker = Tracker("train", batches, "batches", progress, label=f"epoch {epoch}/{config.epochs}")
        for batch_number, start in enumerate(range(0, len(order), config.batch_size), start=1):
            pick = np.sort(order[start : start + config.batch_size])
            batch = torch.from_numpy(np.asarray(train_windows[pick]))
            gains = 10 ** (torch.from_numpy(rng.uniform(-1, 1, len(pick))).float() * config.gain_jitter_db / 20)
            shifts = rng.integers(0, batch.shape[1], len(pick))
            batch = torch.stack([torch.roll(w, int(s)) for w, s in zip(batch * gains[:, None], shifts, strict=True)])
            loss = loss_fn(model.logits(batch), torch.from_numpy(labels[pick]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(pick)
            tracker(batch_number)
        scores = per_recording(validation_index, predict(model, validation_windows))
        auroc = metrics.roc_auc(scores["label"].to_numpy(), scores["score"].to_numpy())
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": total / len(labels), "validation_auroc": auroc, "seconds": seconds})
        progress(
            str(
                Note(
                    "train",
                    f"epoch {epoch}/{config.epochs} loss {total / len(labels):.4f}, "
                    f"validation AUROC {auroc:.3f} ({seconds:.1f} s)",
                )
            )
        )
        # Without a usable validation AUROC (too few recordings), keep the last epoch.
        if np.isnan(auroc) or auroc >= best_auroc:
            best_auroc = -1.0 if np.isnan(auroc) else auroc
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    return TrainResult(model.eval(), history, best_epoch)
