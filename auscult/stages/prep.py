"""prep: 16 kHz mono windows for the model, one shard of the recording table at a time, and their merge.

Only usable, labelled recordings of a split are prepared (the split itself is global and comes before, from
:mod:`auscult.stages.split`). Each shard's windows stream into a file of their own; the merge keeps only an
index of them (which file, which row), so no task ever has to hold or copy every window: on a cluster the shard
files live in the object store and each training worker reads the parts it needs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from auscult import audio, audit, report, shards, table
from auscult.parallel import ordered_map
from auscult.progress import Tracker, emit
from auscult.stages.label import quarantine_bias, quarantine_rates
from auscult.stages.split import usable
from auscult.store import read_uri, read_uri_range
from auscult.task import CLASSES


@dataclass(frozen=True)
class PrepConfig:
    window_s: float = audio.WINDOW_S
    max_windows: int = audio.MAX_WINDOWS
    seed: int = 0  # of the recording-property audit's bootstrap

    @property
    def samples(self) -> int:
        return int(audio.SAMPLE_RATE * self.window_s)


TABLE_FILE = "recordings.parquet"
INDEX_FILE = "windows.parquet"
AUDIT_FILE = "audit.parquet"
SHARDS_FILE = "shards.json"  # where each shard's windows are (a file name in the folder, a path or a store URI)
SHARD_FILE = "shard.json"  # a shard task's: which shard it is and where its windows are
INDEX_COLUMNS = ["recording_id", "participant_id", "split", "label", "window", "shard", "row"]


class ShardedWindows:
    """Every window of every shard, indexed as one ``(windows, samples)`` array in the index's order. A shard's
    file is opened when a window of it is first read (memory-mapped on this machine, read in ranges from an
    object store), and rows are read only when indexed: the windows never have to fit in memory or on disk."""

    def __init__(self, locations: list[str], shard: np.ndarray, row: np.ndarray, samples: int):
        self.locations, self.shard, self.row, self.samples = locations, shard, row, samples
        self._open: dict[int, np.ndarray | StoredWindows] = {}

    def __len__(self) -> int:
        return len(self.shard)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.samples)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __getstate__(self) -> dict:
        # A training worker in another process opens the files itself: a memory map is not to be pickled.
        return {**self.__dict__, "_open": {}}

    def part(self, shard: int) -> np.ndarray | StoredWindows:
        if shard not in self._open:
            self._open[shard] = _open(self.locations[shard])
        return self._open[shard]

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return np.asarray(self.part(int(self.shard[key]))[self.row[key]])
        positions = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        out = np.empty((len(positions), self.samples), dtype=np.float32)
        wanted_shards, wanted_rows = self.shard[positions], self.row[positions]
        for shard in np.unique(wanted_shards):
            mask = wanted_shards == shard
            out[mask] = self.part(int(shard))[wanted_rows[mask]]
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


class StoredWindows:
    """A window file in an object store, read by rows with ranged requests (one per run of consecutive rows):
    nothing is fetched that is not read, so a training worker reads its share of each batch and no more."""

    HEADER_BYTES = 4096  # enough for any header np.save writes for a 2-D float32 array

    def __init__(self, uri: str):
        self.uri = uri
        head = io.BytesIO(read_uri_range(uri, 0, self.HEADER_BYTES))
        version = np.lib.format.read_magic(head)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        self.shape, _, dtype = read_header[version](head)
        self.dtype, self.offset = np.dtype(dtype), head.tell()
        self.row_bytes = self.shape[1] * self.dtype.itemsize

    def __getitem__(self, rows: int | np.ndarray) -> np.ndarray:
        if isinstance(rows, int | np.integer):
            return self[np.asarray([rows])][0]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for run in np.split(np.arange(len(ordered)), breaks):
            if not len(run):
                continue
            first, count = int(ordered[run[0]]), len(run)
            data = read_uri_range(self.uri, self.offset + first * self.row_bytes, count * self.row_bytes)
            out[order[run]] = np.frombuffer(data, dtype=self.dtype).reshape(count, self.shape[1])
        return out


def _open(location: str) -> np.ndarray | StoredWindows:
    """A shard's windows: memory-mapped when the file is on this machine, read in ranges when in a store."""
    if "://" not in location:
        return np.load(location, mmap_mode="r")
    if location.startswith("file://"):
        return np.load(unquote(urlparse(location).path), mmap_mode="r")
    return StoredWindows(location)


class SplitWindows:
    """One split's windows, read only when indexed: a split never has to fit in memory. Indexing (an int, a
    slice, or positions) works as on the array of the split's rows."""

    def __init__(self, windows: ShardedWindows | np.ndarray, rows: np.ndarray):
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
    """The recording table (with splits), the model windows, which recording each window came from (and where it
    is), and the recording-property audit of the training participants."""

    table: pd.DataFrame
    windows: ShardedWindows | np.ndarray  # float32 (n_windows, samples), read lazily
    index: pd.DataFrame  # per window: INDEX_COLUMNS (label is the class index)
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
        where = json.loads((folder / SHARDS_FILE).read_text())
        index = pd.read_parquet(folder / INDEX_FILE)
        locations = [entry if "://" in entry else str(folder / entry) for entry in where["windows"]]
        windows = ShardedWindows(
            locations, index["shard"].to_numpy(np.int64), index["row"].to_numpy(np.int64), where["samples"]
        )
        return cls(table.read(folder / TABLE_FILE, "prep"), windows, index, pd.read_parquet(folder / AUDIT_FILE))


@dataclass
class PreparedShard:
    """What prep made of one shard: its recordings' prep columns, its windows' index rows and where its window
    file is. Saved as a small folder (the KFP artifact of a shard task); the windows are not in it."""

    shard: int
    shards: int
    recordings: pd.DataFrame  # recording_id and the prep columns
    index: pd.DataFrame  # INDEX_COLUMNS but shard
    windows: str  # the window file: a path, or a store URI once published

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.recordings.to_parquet(folder / TABLE_FILE, index=False)
        self.index.to_parquet(folder / INDEX_FILE, index=False)
        where = {"shard": self.shard, "shards": self.shards, "windows": self.windows}
        (folder / SHARD_FILE).write_text(json.dumps(where))

    @classmethod
    def load(cls, folder: str | Path) -> PreparedShard:
        folder = Path(folder)
        where = json.loads((folder / SHARD_FILE).read_text())
        return cls(
            where["shard"],
            where["shards"],
            pd.read_parquet(folder / TABLE_FILE),
            pd.read_parquet(folder / INDEX_FILE),
            where["windows"],
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


def prep_shard(
    frame: pd.DataFrame,
    shard: int,
    count: int,
    windows_file: str | Path,
    config: PrepConfig = PrepConfig(),
    progress: Callable[[str], None] = emit,
    workers: int | None = None,
) -> PreparedShard:
    """Window the usable, labelled recordings of ``shard`` (of ``count``) into ``windows_file``.

    Decoding and resampling run on ``workers`` threads (default: one per core) and windows stream to disk:
    memory does not grow with the shard.
    """
    frame = table.validate(frame, "split")
    chosen = shards.select(frame[usable(frame) & frame["split"].notna()], shard, count)
    index_rows: list[tuple] = []
    recordings: list[dict] = []
    results = ordered_map(
        partial(_window, config=config),
        list(chosen["uri"]),
        workers,
        Tracker("prep", len(chosen), "recordings", progress, label=f"shard {shard + 1}/{count}" if count > 1 else ""),
    )
    with WindowWriter(Path(windows_file), config.samples) as writer:
        for row, (cut, stats) in zip(chosen.itertuples(index=False), results, strict=True):
            first = writer.rows
            writer.append(cut)
            label = CLASSES.index(row.label)
            index_rows += [
                (row.recording_id, row.participant_id, row.split, label, w, first + w) for w in range(len(cut))
            ]
            recordings.append(
                {"recording_id": row.recording_id, "windows": len(cut)}
                | {f"input_{name}": value for name, value in stats.items()}
            )
    columns = ["recording_id", *table.PREP_COLUMNS]
    index_columns = [c for c in INDEX_COLUMNS if c != "shard"]
    return PreparedShard(
        shard,
        count,
        pd.DataFrame(recordings, columns=columns),
        pd.DataFrame(index_rows, columns=index_columns),
        str(windows_file),
    )


def merge(
    frame: pd.DataFrame, parts: list[PreparedShard], folder: str | Path, config: PrepConfig = PrepConfig()
) -> Prepared:
    """The prepared data of the whole table from its shards: the table with prep columns, the index in the
    table's row order (whatever the sharding) and the audit; written to ``folder`` and returned loaded."""
    frame = table.validate(frame, "split")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = sorted(parts, key=lambda part: part.shard)
    if [part.shard for part in parts] != list(range(len(parts))) or any(p.shards != len(parts) for p in parts):
        found = ", ".join(f"{part.shard + 1}/{part.shards}" for part in parts)
        raise ValueError(f"prep needs every shard once; it got {found or 'none'}")
    chosen = frame[usable(frame) & frame["split"].notna()]
    recordings = shards.in_table_order(chosen[["recording_id"]], [part.recordings for part in parts])
    extra = {name: pd.Series(pd.NA, index=frame.index, dtype=dtype) for name, dtype in table.PREP_COLUMNS.items()}
    for name in extra:
        extra[name][chosen.index] = recordings[name].to_numpy()
    prepared = frame.assign(**extra)
    order = pd.Series(range(len(frame)), index=frame["recording_id"].astype(str))
    index = pd.concat(
        [part.index.assign(shard=part.shard) for part in parts] or [pd.DataFrame(columns=INDEX_COLUMNS)],
        ignore_index=True,
    )[INDEX_COLUMNS].astype({"label": "int64", "window": "int64", "shard": "int64", "row": "int64"})
    position = order.loc[index["recording_id"].astype(str)].to_numpy()
    index = index.iloc[np.lexsort((index["window"].to_numpy(), position))].reset_index(drop=True)
    table.write(prepared, folder / TABLE_FILE, "prep")
    index.to_parquet(folder / INDEX_FILE, index=False)
    files = [_relative(part.windows, folder) for part in parts]
    (folder / SHARDS_FILE).write_text(json.dumps({"samples": config.samples, "windows": files}))
    # Before any model: could the label be told from how a recording was made rather than from its sound?
    found = audit.property_audit(prepared[prepared["split"] == "train"], seed=config.seed)
    found.to_parquet(folder / AUDIT_FILE, index=False)
    return Prepared.load(folder)


def _relative(location: str, folder: Path) -> str:
    """A window file inside the prepared folder by its name, so the folder can move; anything else as it is."""
    path = Path(location)
    return path.name if "://" not in location and path.parent.resolve() == folder.resolve() else location


def prep(
    frame: pd.DataFrame,
    folder: str | Path,
    config: PrepConfig = PrepConfig(),
    progress: Callable[[str], None] = emit,
    workers: int | None = None,
    count: int = 1,
) -> Prepared:
    """Every shard (``count`` of them) prepared into ``folder`` one after the other, and merged: what the
    pipeline does across pods, in one process. The answer does not depend on ``count``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = [
        prep_shard(frame, shard, count, folder / window_file_name(shard, count), config, progress, workers)
        for shard in range(count)
    ]
    return merge(frame, parts, folder, config)


def drop_windows(folder: str | Path, keep: np.ndarray) -> list[Path]:
    """Remove the windows that ``keep`` (a mask over the index) leaves out from a prepared folder: its index,
    and every window file inside the folder (rewritten with only the rows kept, the index renumbered to match).
    Window files elsewhere are a run's working data in the object store, which erasure deletes whole. Returns
    the files rewritten."""
    folder = Path(folder)
    index = pd.read_parquet(folder / INDEX_FILE)
    kept = index[keep].reset_index(drop=True)
    where = json.loads((folder / SHARDS_FILE).read_text())
    rewritten = []
    for shard, entry in enumerate(where["windows"]):
        if "://" in entry or Path(entry).is_absolute():
            continue
        mine = (kept["shard"] == shard).to_numpy()
        rows = kept.loc[mine, "row"].to_numpy()
        windows = np.load(folder / entry, mmap_mode="r")
        subset = np.ascontiguousarray(windows[np.sort(rows)])
        del windows
        # Rows keep their order in the file, so a row's new number is its rank among the rows kept.
        kept.loc[mine, "row"] = np.searchsorted(np.sort(rows), rows)
        partial = folder / f".erasing-{entry}"
        with open(partial, "wb") as handle:
            np.save(handle, subset)
        partial.replace(folder / entry)
        rewritten.append(folder / entry)
    kept.to_parquet(folder / INDEX_FILE, index=False)
    return [folder / INDEX_FILE, *rewritten]


def window_file_name(shard: int, count: int) -> str:
    return f"windows-{shard:05d}-of-{count:05d}.npy"


def _window(uri: str, config: PrepConfig) -> tuple[np.ndarray, dict[str, float]]:
    decoded = audio.decode(read_uri(uri))
    wave = audio.prepare(decoded.samples, decoded.sample_rate)
    return audio.windows(wave, config.window_s, config.max_windows), audio.input_stats(wave)


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
