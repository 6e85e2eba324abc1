"""ingest: read recordings and their metadata from sources into the data lake, one row per recording.

Sources (a string each, see :func:`parse_source`):

* a Coswara-shaped folder (``combined_data.csv`` + participant folders), which ``auscult generate`` writes;
* the covid19-cough layout (``metadata.json`` + ``raw/``);
* a generic CSV manifest (columns ``path``, ``label``, ``participant``; optional ``sound_type``, ``age``,
  ``sex``, ``device``), paths relative to the manifest;
* ``telemetry``: what the serving layer recorded in the object store, with feedback labels.

A recording's id is the SHA-256 of its bytes, so ingesting the same files twice adds nothing. Participant
ids are replaced by a keyed hash (HMAC-SHA256) before anything is stored.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from auscult import layout, table
from auscult.audio import FORMATS
from auscult.errors import InputError
from auscult.progress import Note, emit
from auscult.serving import telemetry
from auscult.store import ObjectStore

TELEMETRY = "telemetry"
# The key that pseudonymises participant ids: a Secret on a cluster, a key file in a local workspace.
PSEUDONYM_KEY_ENV = "AUSCULT_PSEUDONYM_KEY"
PSEUDONYM_SECRET = "auscult-pseudonym-key"  # the Secret whose "key" a cluster's tasks get it from


@dataclass(frozen=True)
class Source:
    kind: str  # "coswara", "covid19-cough", "manifest" or "telemetry"
    location: str
    name: str


@dataclass(frozen=True)
class Candidate:
    """One file as a source describes it, before it is hashed and stored."""

    data: bytes
    original_path: str
    participant: str
    sound_type: str
    age: int | None = None
    sex: str | None = None
    device: str | None = None
    raw_label: str | None = None


@dataclass
class IngestReport:
    rows: int = 0
    duplicates: list[str] = field(default_factory=list)  # byte-identical files: kept once, named here
    new_objects: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # files that metadata names but that are not there


def parse_source(spec: str) -> Source:
    """Recognise a source from its spec: ``telemetry``, a CSV manifest, or a dataset folder."""
    if spec == TELEMETRY:
        return Source(TELEMETRY, "", TELEMETRY)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return Source("manifest", str(path.resolve()), path.stem)
    if (path / "metadata.json").is_file() and (path / "raw").is_dir():
        return Source("covid19-cough", str(path.resolve()), path.resolve().name)
    if (path / "combined_data.csv").is_file():
        return Source("coswara", str(path.resolve()), path.resolve().name)
    if not path.exists():
        raise InputError(f"source {spec!r} does not exist: give a dataset folder, a .csv manifest or 'telemetry'")
    raise InputError(
        f"cannot recognise source {spec!r}: expected 'telemetry', a .csv manifest, a folder with "
        "combined_data.csv (Coswara layout) or metadata.json + raw/ (covid19-cough layout)"
    )


def pseudonymise(participant: str, key: bytes) -> str:
    return hmac.new(key, participant.encode(), hashlib.sha256).hexdigest()[:24]


def age_band(age: int | None) -> str | None:
    if age is None or age < 0:
        return None
    if age < 18:
        return "0-17"
    if age >= 70:
        return "70+"
    low = age // 10 * 10 if age >= 20 else 18
    return f"{low}-{age // 10 * 10 + 9}"


def _sound_type(name: str) -> str:
    lowered = name.lower()
    for kind in ("cough", "breathing"):
        if kind in lowered:
            return kind
    return "unknown"


def _int_or_none(value: object) -> int | None:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _metadata_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a metadata CSV that has ``required`` columns; InputError naming the file otherwise."""
    try:
        reader = csv.DictReader(io.StringIO(_metadata_text(path), newline=""), strict=True)
        rows = list(reader)
    except csv.Error as error:
        raise InputError(f"cannot read {path} as CSV: {error}") from None
    missing = [name for name in required if name not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (it has: {reader.fieldnames or 'none'})")
    return rows


def _coswara(source: Source, report: IngestReport) -> Iterator[Candidate]:
    root = Path(source.location)
    people = {row["id"]: row for row in _csv_rows(root / "combined_data.csv", ("id",))}
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        person = people.get(folder.name, {})
        for path in sorted(folder.iterdir()):
            if path.suffix.lstrip(".").lower() not in FORMATS:
                continue
            yield Candidate(
                data=path.read_bytes(),
                original_path=str(path),
                participant=folder.name,
                sound_type=_sound_type(path.stem),
                age=_int_or_none(person.get("a")),
                sex=person.get("g") or None,
                device=person.get("device") or None,
                raw_label=person.get("covid_status") or None,
            )
    seen = {p.name for p in root.glob("*/*") if p.is_dir()}
    report.missing += [
        f"{source.name}: participant {pid} has metadata but no folder" for pid in people if pid not in seen
    ]


def _covid19_cough(source: Source, report: IngestReport) -> Iterator[Candidate]:
    root = Path(source.location)
    metadata = root / "metadata.json"
    try:
        entries = {entry["filename"]: entry for entry in json.loads(_metadata_text(metadata))}
    except (ValueError, TypeError, KeyError) as error:
        raise InputError(f"{metadata} is not a list of entries with a 'filename': {error!r}") from None
    for path in sorted((root / "raw").iterdir()):
        if path.suffix.lstrip(".").lower() not in FORMATS:
            continue
        entry = entries.get(path.name, {})
        covid = entry.get("covid19")
        yield Candidate(
            data=path.read_bytes(),
            original_path=str(path),
            # The dataset has no participant ids: each recording is its own participant.
            participant=path.stem,
            sound_type="cough",
            device=entry.get("source"),
            raw_label=None if covid is None else str(covid).lower(),
        )
    present = {p.name for p in (root / "raw").iterdir()}
    report.missing += [
        f"{source.name}: {name} is in metadata.json but not in raw/" for name in entries if name not in present
    ]


def _manifest(source: Source, report: IngestReport) -> Iterator[Candidate]:
    manifest = Path(source.location)
    for line, row in enumerate(_csv_rows(manifest, ("path",)), start=2):
        path = (manifest.parent / (row.get("path") or "")).resolve()
        if not row.get("path") or not path.is_file():
            report.missing.append(f"{manifest.name} line {line}: no file at {row.get('path')!r}")
            continue
        if path.suffix.lstrip(".").lower() not in FORMATS:
            report.missing.append(f"{manifest.name} line {line}: {row['path']!r} is not a {'/'.join(FORMATS)} file")
            continue
        yield Candidate(
            data=path.read_bytes(),
            original_path=str(path),
            participant=row.get("participant") or path.stem,
            sound_type=row.get("sound_type") or _sound_type(path.stem),
            age=_int_or_none(row.get("age")),
            sex=row.get("sex") or None,
            device=row.get("device") or None,
            raw_label=row.get("label") or None,
        )


def _telemetry(store: ObjectStore, report: IngestReport) -> Iterator[Candidate]:
    recorded = telemetry.read(store)
    for key, record in recorded.records.items():
        try:
            data = store.get(record["audio_key"])
        except KeyError:
            report.missing.append(f"telemetry record {key} names audio {record['audio_key']} that is not stored")
            continue
        tags = record.get("tags", {})
        yield Candidate(
            data=data,
            original_path=store.uri(record["audio_key"]),
            participant=str(tags.get("participant") or record["request_id"]),
            sound_type=str(tags.get("sound_type") or "unknown"),
            age=_int_or_none(tags.get("age")),
            sex=tags.get("sex"),
            device=tags.get("device"),
            raw_label=recorded.feedback.get(record["request_id"]),
        )


def _candidates(source: Source, store: ObjectStore, report: IngestReport) -> Iterator[Candidate]:
    if source.kind == TELEMETRY:
        return _telemetry(store, report)
    readers: dict[str, Callable[[Source, IngestReport], Iterator[Candidate]]] = {
        "coswara": _coswara,
        "covid19-cough": _covid19_cough,
        "manifest": _manifest,
    }
    return readers[source.kind](source, report)


def ingest(
    sources: list[str],
    store: ObjectStore,
    pseudonym_key: bytes,
    progress: Callable[[str], None] = emit,
) -> tuple[pd.DataFrame, IngestReport]:
    """Copy every recording of ``sources`` into the lake; return the recording table and a report."""
    if not pseudonym_key:
        raise InputError(
            f"a pseudonymisation key is required: set {PSEUDONYM_KEY_ENV} (on a cluster, from the pseudonym-key Secret)"
        )
    report = IngestReport()
    rows: dict[str, dict] = {}
    for spec in sources:
        source = parse_source(spec)
        count = 0
        for candidate in _candidates(source, store, report):
            recording_id = hashlib.sha256(candidate.data).hexdigest()
            if recording_id in rows:
                first = rows[recording_id]["original_path"]
                report.duplicates.append(f"{candidate.original_path} is byte-identical to {first}: kept once")
                continue
            fmt = Path(candidate.original_path).suffix.lstrip(".").lower()
            key = layout.lake(recording_id, fmt)
            is_new = not store.exists(key)
            report.new_objects += is_new
            rows[recording_id] = {
                "recording_id": recording_id,
                "participant_id": pseudonymise(f"{source.name}:{candidate.participant}", pseudonym_key),
                "source": source.name,
                "origin": "telemetry" if source.kind == TELEMETRY else "dataset",
                "uri": store.put(key, candidate.data) if is_new else store.uri(key),
                "original_path": candidate.original_path,
                "sound_type": candidate.sound_type,
                "format": fmt,
                "size_bytes": len(candidate.data),
                "age_band": age_band(candidate.age),
                "sex": candidate.sex,
                "device": candidate.device,
                "raw_label": candidate.raw_label,
            }
            count += 1
        report.by_source[source.name] = count
        progress(str(Note("ingest", f"{source.name} ({source.kind}): {count} recordings")))
    frame = pd.DataFrame(list(rows.values()), columns=list(table.INGEST_COLUMNS))
    report.rows = len(frame)
    return table.validate(frame, "ingest"), report
