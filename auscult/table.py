"""The recording table: one Parquet table that flows from ingest to prep and only ever gains columns.

Its columns are defined here and nowhere else. Each stage adds its own group; every stage validates what
it reads with :func:`validate` before it touches a row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# column -> pandas dtype. Nullable dtypes so that a missing value stays missing, never becomes 0 or "nan".
INGEST_COLUMNS: dict[str, str] = {
    "recording_id": "string",  # sha256 of the file's bytes
    "participant_id": "string",  # keyed hash (HMAC-SHA256) of the source's participant id
    "source": "string",  # the source's name (a dataset folder or prefix, a manifest, "uploads", "telemetry")
    # "dataset", "synthetic" (written by `auscult generate`), "uploads" (an app's, through the landing prefix) or
    # "telemetry"
    "origin": "string",
    "uri": "string",  # the copy in the data lake
    "original_path": "string",  # where the file came from, so that every reason can name it
    "sound_type": "string",  # cough, breathing, or unknown
    "format": "string",  # file extension: wav, flac, ogg, mp3
    "size_bytes": "Int64",
    "age_band": "string",
    "sex": "string",
    "device": "string",
    "raw_label": "string",  # the source's own label, before the class map
    # Byte-identical copies that named different participants or labels, naming each copy; missing when none
    # did. The label stage sends such a recording to review.
    "conflict": "string",
}
CURATE_COLUMNS: dict[str, str] = {
    "sample_rate": "Int64",
    "channels": "Int64",
    "duration_s": "Float64",
    "rms_dbfs": "Float64",
    "peak": "Float64",
    "clipped_fraction": "Float64",
    "silence_fraction": "Float64",
    "snr_db": "Float64",
    "active_s": "Float64",
    "bandwidth_hz": "Float64",  # estimated from the spectrum (audio.bandwidth), whatever the sample rate says
    "status": "string",  # "ok" or "quarantined"
    "reason": "string",  # why it was quarantined, naming the file
}
LABEL_COLUMNS: dict[str, str] = {
    "label": "string",  # one of the task's classes, or missing
    "label_status": "string",  # "labelled", "unlabelled" or "review"
    "label_note": "string",
}
SPLIT_COLUMNS: dict[str, str] = {
    "split": "string",  # "train", "validation", "test", or missing when not used
}
PREP_COLUMNS: dict[str, str] = {
    "windows": "Int64",  # how many model windows were cut from the recording
    # Statistics of the prepared 16 kHz waveform: the training reference that monitoring compares with.
    "input_duration_s": "Float64",
    "input_rms_dbfs": "Float64",
    "input_zero_crossing_rate": "Float64",
    "input_spectral_centroid_hz": "Float64",
}

STAGE_COLUMNS: dict[str, dict[str, str]] = {
    "ingest": INGEST_COLUMNS,
    "curate": INGEST_COLUMNS | CURATE_COLUMNS,
    "label": INGEST_COLUMNS | CURATE_COLUMNS | LABEL_COLUMNS,
    "split": INGEST_COLUMNS | CURATE_COLUMNS | LABEL_COLUMNS | SPLIT_COLUMNS,
    "prep": INGEST_COLUMNS | CURATE_COLUMNS | LABEL_COLUMNS | SPLIT_COLUMNS | PREP_COLUMNS,
}

OK = "ok"
QUARANTINED = "quarantined"


class TableError(ValueError):
    """The recording table does not have the shape a stage needs."""


def empty(stage: str) -> pd.DataFrame:
    """An empty table with the columns of ``stage``."""
    return conform(pd.DataFrame(columns=list(STAGE_COLUMNS[stage])), stage)


def conform(frame: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Cast the columns of ``stage`` to their dtypes, in their defined order (other columns are kept after)."""
    columns = STAGE_COLUMNS[stage]
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise TableError(f"recording table lacks columns for stage {stage!r}: {', '.join(missing)}")
    out = frame.astype(columns)
    extra = [c for c in frame.columns if c not in columns]
    return out[list(columns) + extra].reset_index(drop=True)


def validate(frame: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Check that ``frame`` has every column ``stage`` produces, with unique recording ids."""
    out = conform(frame, stage)
    if out["recording_id"].isna().any():
        raise TableError("recording table has rows without a recording_id")
    duplicated = out["recording_id"].duplicated()
    if duplicated.any():
        raise TableError(f"recording table has duplicate ids: {out.loc[duplicated, 'recording_id'].iloc[0]}")
    return out


def write(frame: pd.DataFrame, path: str | Path, stage: str) -> None:
    validate(frame, stage).to_parquet(path, index=False)


def read(path: str | Path, stage: str) -> pd.DataFrame:
    return validate(pd.read_parquet(path), stage)


# A spreadsheet takes a cell that starts with one of these for a formula (CSV injection): =HYPERLINK(...) in a
# metadata field would run in the reviewer's spreadsheet.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would take for a formula prefixed with a single quote (shown
    as text). Numbers, negative ones included, are left as they are."""

    def safe(value: object) -> object:
        return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value

    return frame.map(safe)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Every CSV the project writes goes through here, so that none carries a live formula."""
    spreadsheet_safe(frame).to_csv(path, index=False)
