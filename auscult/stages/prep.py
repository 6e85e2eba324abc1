"""prep: 16 kHz mono windows for the model, and a train/validation/test split grouped by participant.

Only usable, labelled recordings are prepared. The split assigns whole participants, stratified by their
label, so the same person never appears on both sides of an evaluation. It is a function of the recordings
and the seed alone, not of the pseudonymisation key: the same data splits the same way in any workspace.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from auscult import audio, audit, report, table
from auscult.errors import InputError
from auscult.parallel import ordered_map
from auscult.progress import Tracker, emit
from auscult.stages.label import LABELLED, quarantine_bias, quarantine_rates
from auscult.store import read_uri
from auscult.task import CLASSES, MIN_PARTICIPANTS_PER_CLASS, SPLITS


@dataclass(frozen=True)
class PrepConfig:
    window_s: float = audio.WINDOW_S
    max_windows: int = audio.MAX_WINDOWS
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    # Validation and test each need this many participants of each class for a verdict to mean anything.
    min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS

    @property
    def participants_needed_per_class(self) -> int:
        """Enough participants of a class that validation and test each get the minimum, and training more."""
        smallest = min(self.validation_fraction, self.test_fraction)
        floor = 3 * self.min_participants_per_class
        return max(floor, math.ceil(self.min_participants_per_class / smallest - 1e-9)) if smallest > 0 else floor


WINDOWS_FILE = "windows.npy"
TABLE_FILE = "recordings.parquet"
INDEX_FILE = "windows.parquet"
AUDIT_FILE = "audit.parquet"


class SplitWindows:
    """One split's windows, read from the memory-mapped file only when indexed: a split never has to fit in
    memory. Indexing (an int, a slice, or positions) works as on the array of the split's rows."""

    def __init__(self, windows: np.ndarray, rows: np.ndarray):
        self.windows, self.rows = windows, rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.windows.shape[1])

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        return np.asarray(self.windows[self.rows[key]])


@dataclass
class Prepared:
    """The recording table (with splits), the model windows, which recording each window came from, and the
    recording-property audit of the training participants."""

    table: pd.DataFrame
    windows: np.ndarray  # float32 (n_windows, samples), memory-mapped from the prep folder
    index: pd.DataFrame  # per window: recording_id, participant_id, split, label (class index)
    audit: pd.DataFrame  # per recording property: how well it alone predicts the label (audit.property_audit)

    @property
    def training_recordings(self) -> pd.DataFrame:
        return self.table[self.table["split"] == "train"]

    def split(self, name: str) -> tuple[SplitWindows, pd.DataFrame]:
        mask = (self.index["split"] == name).to_numpy()
        return SplitWindows(self.windows, np.flatnonzero(mask)), self.index[mask].reset_index(drop=True)

    @classmethod
    def load(cls, folder: str | Path) -> Prepared:
        folder = Path(folder)
        return cls(
            table.read(folder / TABLE_FILE, "prep"),
            np.load(folder / WINDOWS_FILE, mmap_mode="r"),
            pd.read_parquet(folder / INDEX_FILE),
            pd.read_parquet(folder / AUDIT_FILE),
        )


class WindowWriter:
    """Appends rows to a ``.npy`` file as they come, so memory stays flat however many windows there are.

    The header is written first with a zero row count and rewritten with the real one on leaving the ``with``
    block; both are the same 128 bytes for any count a disk can hold.
    """

    def __init__(self, path: Path, columns: int):
        self.path, self.columns, self.rows = path, columns, 0
        self.handle = open(path, "wb")
        self.header_size = self._write_header()

    def append(self, rows: np.ndarray) -> None:
        if rows.ndim != 2 or rows.shape[1] != self.columns:
            raise ValueError(f"{self.path}: rows of {self.columns} samples expected, got shape {rows.shape}")
        self.handle.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self.rows += len(rows)

    def __enter__(self) -> WindowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.seek(0)
        header_size = self._write_header()
        self.handle.close()
        if header_size != self.header_size:
            raise RuntimeError(f"{self.path}: the .npy header changed size")

    def _write_header(self) -> int:
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.columns)}
        np.lib.format.write_array_header_1_0(self.handle, header)
        return self.handle.tell()


def participants_by_class(frame: pd.DataFrame) -> dict[str, int]:
    """How many participants have usable, labelled recordings, per class (every class, zeros included)."""
    frame = frame[(frame["status"] == table.OK) & (frame["label_status"] == LABELLED)]
    counts = frame.groupby("label")["participant_id"].nunique()
    return {cls: int(counts.get(cls, 0)) for cls in CLASSES}


def require_enough_participants(frame: pd.DataFrame, config: PrepConfig = PrepConfig()) -> dict[str, int]:
    """Participants per class, or an InputError saying the data cannot support a model, with the counts."""
    counts = participants_by_class(frame)
    needed = config.participants_needed_per_class
    if min(counts.values()) < needed:
        have = ", ".join(f"{cls}: {count} participants" for cls, count in counts.items())
        usable = frame["status"] == table.OK
        where = (
            f"of {len(frame)} recordings, {int((~usable).sum())} are quarantined, "
            f"{int((usable & (frame['label_status'] == LABELLED)).sum())} labelled, "
            f"{int((usable & (frame['label_status'] != LABELLED)).sum())} without a usable label (review queue)"
        )
        raise InputError(
            f"{have}; training needs at least {needed} of each (validation and test each need "
            f"{config.min_participants_per_class} per class and take {config.validation_fraction:.0%} and "
            f"{config.test_fraction:.0%}); {where}. Add labelled recordings, or lower "
            "--min-participants-per-class (pipeline parameter min_participants_per_class)"
        )
    return counts


def split_participants(frame: pd.DataFrame, config: PrepConfig) -> dict[str, str]:
    """participant -> split, stratified by label, for the usable labelled rows of ``frame``.

    Participants are ordered by a hash of the seed and their first recording's id (a content hash), so the
    split follows the data and the seed, not the keyed pseudonyms.
    """
    people = frame.groupby("participant_id").agg(label=("label", "first"), first=("recording_id", "min"))
    people["order"] = [hashlib.sha256(f"{config.seed}:{first}".encode()).hexdigest() for first in people["first"]]
    assignment: dict[str, str] = {}
    for cls in sorted(people["label"].unique()):
        members = list(people[people["label"] == cls].sort_values("order").index)
        count = len(members)
        n_test = int(round(count * config.test_fraction)) if count >= 3 else 0
        n_validation = int(round(count * config.validation_fraction)) if count >= 3 else 0
        for position, person in enumerate(members):
            assignment[person] = (
                "test" if position < n_test else "validation" if position < n_test + n_validation else "train"
            )
    return assignment


def prep(
    frame: pd.DataFrame,
    folder: str | Path,
    config: PrepConfig = PrepConfig(),
    progress: Callable[[str], None] = emit,
    workers: int | None = None,
) -> Prepared:
    """Window every usable, labelled recording into ``folder`` (table, windows, index); return it loaded.

    Decoding and resampling run on ``workers`` threads (default: one per core) and windows stream to disk:
    memory does not grow with the cohort.
    """
    frame = table.validate(frame, "label")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    usable = (frame["status"] == table.OK) & (frame["label_status"] == LABELLED)
    chosen = frame[usable]
    assignment = split_participants(chosen, config)
    columns = ["recording_id", "participant_id", "split", "label", "window"]
    index_rows: list[tuple] = []
    extra = {name: pd.Series(pd.NA, index=frame.index, dtype=dtype) for name, dtype in table.PREP_COLUMNS.items()}
    splits, counts = [], []
    stats: dict[str, list[float]] = {name: [] for name in audio.STAT_NAMES}
    results = ordered_map(
        partial(_window, config=config),
        list(chosen["uri"]),
        workers,
        Tracker("prep", len(chosen), "recordings", progress),
    )
    with WindowWriter(folder / WINDOWS_FILE, int(audio.SAMPLE_RATE * config.window_s)) as writer:
        for row, (cut, row_stats) in zip(chosen.itertuples(index=False), results, strict=True):
            split = assignment[row.participant_id]
            writer.append(cut)
            label = CLASSES.index(row.label)
            index_rows += [(row.recording_id, row.participant_id, split, label, w) for w in range(len(cut))]
            splits.append(split)
            counts.append(len(cut))
            for name, value in row_stats.items():
                stats[name].append(value)
    extra["split"][chosen.index] = splits
    extra["windows"][chosen.index] = counts
    for name, values in stats.items():
        extra[f"input_{name}"][chosen.index] = values
    prepared = frame.assign(**extra)
    table.write(prepared, folder / TABLE_FILE, "prep")
    pd.DataFrame(index_rows, columns=columns).to_parquet(folder / INDEX_FILE, index=False)
    # Before any model: could the label be told from how a recording was made rather than from its sound?
    found = audit.property_audit(prepared[prepared["split"] == "train"], seed=config.seed)
    found.to_parquet(folder / AUDIT_FILE, index=False)
    return Prepared.load(folder)


def _window(uri: str, config: PrepConfig) -> tuple[np.ndarray, dict[str, float]]:
    decoded = audio.decode(read_uri(uri))
    wave = audio.prepare(decoded.samples, decoded.sample_rate)
    return audio.windows(wave, config.window_s, config.max_windows), audio.input_stats(wave)


def split_members(prepared: pd.DataFrame) -> dict[str, list[str]]:
    """The recording ids of each split (what the lineage record keeps of a run's data)."""
    return {split: sorted(prepared.loc[prepared["split"] == split, "recording_id"].astype(str)) for split in SPLITS}


def audit_markdown(prepared: Prepared) -> str:
    """The data audit for KFP's UI: what each recording property alone says about the label on the training
    participants, and whether curation took sides."""
    found, rates = prepared.audit, quarantine_rates(prepared.table)
    lines = [
        "# Could the label be told without listening?",
        "",
        f"Each property's strata (continuous ones binned at the training recordings' {audit.BINS}-quantiles) "
        f"scored by the share of positives among other participants; flagged at AUROC >= {audit.FLAG_AUROC}.",
        "",
        report.markdown_table(audit.TABLE_HEADER, audit.table_rows(found)),
        "# Quarantine and review by class and source",
        "",
        report.markdown_table([c.replace("_", " ") for c in rates.columns], rates.itertuples(index=False)),
    ]
    if warning := quarantine_bias(rates):
        lines.append(f"**{warning}**")
    return "\n".join(lines) + "\n"
