"""prep: 16 kHz mono windows for the model, and a train/validation/test split grouped by participant.

Only usable, labelled recordings are prepared. The split assigns whole participants, stratified by their
label, so the same person never appears on both sides of an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auscult import audio, table
from auscult.stages.label import LABELLED
from auscult.store import read_uri
from auscult.task import CLASSES


@dataclass(frozen=True)
class PrepConfig:
    window_s: float = audio.WINDOW_S
    max_windows: int = audio.MAX_WINDOWS
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0


@dataclass
class Prepared:
    """The recording table (with splits), the model windows, and which recording each window came from."""

    table: pd.DataFrame
    windows: np.ndarray  # float32 (n_windows, samples)
    index: pd.DataFrame  # per window: recording_id, participant_id, split, label (class index)

    def split(self, name: str) -> tuple[np.ndarray, pd.DataFrame]:
        mask = (self.index["split"] == name).to_numpy()
        return self.windows[mask], self.index[mask].reset_index(drop=True)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table.write(self.table, folder / "recordings.parquet", "prep")
        np.save(folder / "windows.npy", self.windows)
        self.index.to_parquet(folder / "windows.parquet", index=False)

    @classmethod
    def load(cls, folder: str | Path) -> Prepared:
        folder = Path(folder)
        return cls(
            table.read(folder / "recordings.parquet", "prep"),
            np.load(folder / "windows.npy", mmap_mode="r"),
            pd.read_parquet(folder / "windows.parquet"),
        )


def split_participants(people: pd.Series, config: PrepConfig) -> dict[str, str]:
    """participant -> split, stratified by each participant's label (``people``: participant -> label)."""
    rng = np.random.default_rng(config.seed)
    assignment: dict[str, str] = {}
    for cls in sorted(people.unique()):
        members = sorted(people.index[people == cls])
        rng.shuffle(members)
        count = len(members)
        n_test = int(round(count * config.test_fraction)) if count >= 3 else 0
        n_validation = int(round(count * config.validation_fraction)) if count >= 3 else 0
        for position, person in enumerate(members):
            assignment[person] = (
                "test" if position < n_test else "validation" if position < n_test + n_validation else "train"
            )
    return assignment


def prep(frame: pd.DataFrame, config: PrepConfig = PrepConfig(), progress: Callable[[str], None] = print) -> Prepared:
    frame = table.validate(frame, "label")
    usable = (frame["status"] == table.OK) & (frame["label_status"] == LABELLED)
    people = frame[usable].groupby("participant_id")["label"].first()
    assignment = split_participants(people, config)
    pieces: list[np.ndarray] = []
    index_rows: list[dict] = []
    extra = {name: pd.Series(pd.NA, index=frame.index, dtype=dtype) for name, dtype in table.PREP_COLUMNS.items()}
    chosen = frame.index[usable]
    for position, row_index in enumerate(chosen, start=1):
        row = frame.loc[row_index]
        decoded = audio.decode(read_uri(row["uri"]))
        wave = audio.prepare(decoded.samples, decoded.sample_rate)
        cut = audio.windows(wave, config.window_s, config.max_windows)
        split = assignment[row["participant_id"]]
        pieces.append(cut)
        index_rows += [
            {
                "recording_id": row["recording_id"],
                "participant_id": row["participant_id"],
                "split": split,
                "label": CLASSES.index(row["label"]),
                "window": w,
            }
            for w in range(len(cut))
        ]
        extra["split"][row_index] = split
        extra["windows"][row_index] = len(cut)
        for name, value in audio.input_stats(wave).items():
            extra[f"input_{name}"][row_index] = value
        if position % max(1, len(chosen) // 10) == 0 or position == len(chosen):
            progress(f"prep: {position}/{len(chosen)} recordings windowed")
    size = int(audio.SAMPLE_RATE * config.window_s)
    windows = np.concatenate(pieces) if pieces else np.zeros((0, size), dtype=np.float32)
    prepared = table.validate(frame.assign(**extra), "prep")
    index = pd.DataFrame(index_rows, columns=["recording_id", "participant_id", "split", "label", "window"])
    return Prepared(prepared, windows, index)
