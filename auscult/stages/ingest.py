"""ingest: read recordings and their metadata from sources into the data lake, one row per recording.

Sources (a string each, see :func:`parse_source`):

* a Coswara-shaped folder (``combined_data.csv`` + participant folders), which ``auscult generate`` writes;
* the covid19-cough layout (``metadata.json`` + ``raw/``);
* a generic CSV manifest (columns ``path``, ``label``, ``participant``; optional ``sound_type``, ``age``,
  ``sex``, ``device``), paths relative to the manifest. A manifest named through a symbolic link is the file the
  link resolves to: its folder (not the link's) is where its paths start and what they must stay inside;
* ``telemetry``: what the serving layer recorded in the object store, with feedback labels.

A recording's id is the SHA-256 of its bytes, so ingesting the same files twice adds nothing. Participant
ids are replaced by a keyed hash (HMAC-SHA256, :mod:`auscult.pseudonym`) before anything is stored.

Nothing a source says is trusted. A file it names is read only when it resolves (symbolic links followed) to
a regular file inside the source's own folder (a manifest's folder, a dataset's folder); anything else is
refused with the reason, never opened. It is then opened one folder at a time from the source's folder without
following a link, so that a folder swapped for a link after that check cannot lead the read outside. A folder
that is a link to nothing is refused, not skipped. A metadata value that is not plausible (an age that is not 0
to 120 years, a value longer than any real one, something that is not text) is dropped, and control characters
are removed, each with a note naming the row and column. A CSV header that names a column twice is an error;
fields beyond a row's header are dropped with a note. Two metadata entries for the same participant (Coswara)
or file (covid19-cough) that differ leave a note naming both; the first is used, and when their labels differ
the recordings they describe go to review. Byte-identical copies that name different participants or labels are
kept once and flagged, naming each copy, for the label stage to send to review.

Ingest is incremental: a run reads only what is new. Each source has an index in the store
(:func:`layout.ingest_index`, see :class:`_Index`) of what earlier runs learnt from its files: a recording's content
hash, format and size, keyed by its path and what says whether it changed (size, modification and change times and
inode for a file in a folder; ETag and size for an object). A file that has not changed since is not opened, read
or hashed again; one that has is read again. Metadata files (a CSV manifest, Coswara's ``combined_data.csv``,
covid19-cough's ``metadata.json``) are small and read on every run, so what they say is always current. An app
upload is known by its recording and its sidecar together, and telemetry by its record's key, read from a
watermark (:func:`_telemetry`); for both the index keeps what the metadata said too, so neither is read again.
Everything taken from the index still passes the erasure tombstones, and a file refused before is reported again.
The index is written only once every source has been read, and ``full`` reads everything as if there were none.
Residual risk: a file rewritten with the same bytes count whose times and inode were set back as they were (or, in
the store, an object with the same ETag) keeps its old content hash until ``full``.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import hmac
import io
import json
import math
import os
import posixpath
import re
import stat
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from auscult import audio, layout, synth, table
from auscult.audio import FORMATS
from auscult.erasure import is_erased, tombstones
from auscult.errors import InputError
from auscult.progress import Note, Step, emit
from auscult.pseudonym import PSEUDONYM_KEY_ENV, TELEMETRY, is_pseudonym, participant_id
from auscult.serving import telemetry
from auscult.store import Listed, ObjectStore, open_store
from auscult.task import MAX_AGE

MAX_FILE_BYTES = 256 * 2**20  # far above any recording or metadata file: a bigger one would only exhaust memory
MAX_TEXT_CHARS = 200  # longer than any label, sex, device, sound type or participant id a source has
# Never kept in a value or a file name: control and format characters (line breaks that forge log lines,
# bidirectional overrides), lone surrogates (undecodable file names; Parquet cannot hold them), line separators.
_CONTROL = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# How a candidate's participant was named: the source's own id, none (the source has no participant ids, so
# each recording stands for its own participant), or the stored pseudonym already (telemetry's tag).
GIVEN, PER_RECORDING, PSEUDONYM = "given", "per-recording", "pseudonym"

# Candidate field -> the source's column (or JSON field, or telemetry tag).
COSWARA_COLUMNS = {"age": "a", "sex": "g", "device": "device", "raw_label": "covid_status"}
COVID19_COUGH_FIELDS = {"device": "source", "raw_label": "covid19"}
MANIFEST_COLUMNS = {
    "participant": "participant",
    "sound_type": "sound_type",
    "age": "age",
    "sex": "sex",
    "device": "device",
    "raw_label": "label",
}
# The app-uploads source: an app backend drops each recording in the store's landing prefix (layout.UPLOADS) with
# a JSON sidecar of the same name, e.g. ``uploads/2026/12/02/abc123.webm`` + ``uploads/2026/12/02/abc123.json``.
UPLOADS = "uploads"
UPLOAD_FIELDS = {
    "participant": "participant",
    "raw_label": "label",
    "sound_type": "sound_type",
    "age": "age",
    "sex": "sex",
    "device": "device",
}
MAX_SIDECAR_BYTES = 64 * 2**10
# What a pipeline reads when its run names no sources: what apps uploaded, and what production heard.
DEFAULT_SOURCES = (UPLOADS, TELEMETRY)
TELEMETRY_TAGS = {"sound_type": "sound_type", "age": "age", "sex": "sex", "device": "device"}
# How many days before its watermark ingest lists telemetry again: a record is filed by the day it was received,
# and one spooled through a store outage lands later. One uploaded later still than this is read only by ``full``.
TELEMETRY_LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class Source:
    kind: str  # "coswara", "covid19-cough", "manifest" or "telemetry"
    location: str
    name: str


@dataclass(frozen=True)
class Content:
    """A recording's bytes as ingest knows them: read in this run (``data``), or, for a file unchanged since an
    earlier run read it, what that run learnt from them (``data`` None: the lake has them, since the index that
    says so is written only after the lake object is)."""

    recording_id: str
    format: str  # what the bytes are, whatever the name says; the extension when they are no format we know
    size: int
    data: bytes | None = None


def _content(data: bytes, path: str | Path) -> Content:
    return Content(hashlib.sha256(data).hexdigest(), audio.sniff_format(data) or _extension(path), len(data), data)


Keep = Callable[[str], None]  # puts a file's entry in the index, given the participant's pseudonym


def _keep_nothing(pid: str) -> None:
    pass


@dataclass(frozen=True)
class Candidate:
    """One file as a source describes it, before it is stored."""

    content: Content
    original_path: str
    described_by: str  # the file and the metadata row that describe this copy: what a conflict names
    participant: str
    sound_type: str
    participant_kind: str = GIVEN
    pseudonym: str | None = None  # the participant's stored id when known already (an index entry): used as it is
    age: int | None = None
    sex: str | None = None
    device: str | None = None
    raw_label: str | None = None
    conflict: str | None = None  # why its metadata disagrees about its label, naming the entries: to review
    keep: Keep = _keep_nothing  # called once the recording is taken (not erased): the index remembers it


@dataclass
class IngestReport:
    rows: int = 0
    duplicates: list[str] = field(default_factory=list)  # byte-identical copies that agree: kept once, named here
    # Byte-identical copies that name different participants or labels: kept once, flagged for review.
    conflicts: list[str] = field(default_factory=list)
    new_objects: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # files that metadata names but that are not there
    # What a source names that ingest does not read, with why: a path outside the source's folder, something
    # that is not a regular file or not audio, a telemetry record that is broken or altered.
    refused: list[str] = field(default_factory=list)
    # Values dropped or cleaned, naming row and column; fields beyond a header; entries for the same participant
    # or file that differ, naming both.
    metadata_notes: list[str] = field(default_factory=list)
    erased: int = 0  # recordings of erased content or participants: counted, never named
    files_read: int = 0  # recordings read in this run (of telemetry: records whose audio was read)
    files_known: int = 0  # unchanged since an earlier run read them: taken from the index, not read again


class _Refused(Exception):
    """A file a source names that ingest does not read; the message says why."""


class _Missing(_Refused):
    """A file a source names that is not there."""


@dataclass(frozen=True)
class _Entry:
    """One participant's or file's metadata: where it is, its values, and why it is disputed (None if it is not)."""

    where: str
    values: Mapping[str, object]
    conflict: str | None = None


@dataclass(frozen=True)
class _Claim:
    """What one copy of a recording says: whose it is (None when the source does not know) and its label."""

    described_by: str
    participant_id: str | None
    label: str | None


# The columns of an ingest index: a file's keyed name, what says whether it changed, and what ingest learnt from it
# (its content's hash, format and size; for uploads and telemetry what the metadata said, as JSON, the participant
# pseudonymised; or why it was refused or missing, and the notes on its values); for telemetry the request's id and
# the key and value of its newest label.
INDEX_COLUMNS = (
    "name",
    "identity",
    "recording_id",
    "format",
    "size",
    "fields",
    "refused",
    "missing",
    "notes",
    "request_id",
    "feedback",
    "label",
)


class _Index:
    """What ingest learnt from one source's files in earlier runs (:func:`layout.ingest_index`), and what this run
    learns: one Parquet table in the store, read when a run starts and written whole when it has read every source.

    A file's path is kept only as a keyed hash (HMAC with the pseudonymisation key: a path may name a participant,
    as Coswara's folders do); a telemetry key names a day and a request id, and is kept as it is. Participants are
    kept only as pseudonyms. The index is named by a keyed hash of the source, so that a run under another key
    starts afresh. An entry whose recording is erased is not kept (an erased file is read again on each run, and
    found erased again), and erasure removes the rows that name an erased recording or participant (it edits every
    table in the store), so the index never brings one back; the entry of a file that is gone is dropped when the
    next run writes the index."""

    def __init__(self, store: ObjectStore, source: Source, key: bytes, full: bool = False):
        self.store, self.key = store, key
        self.clear_names = source.kind == TELEMETRY
        # Keyed too: what a run under another key learnt (its pseudonyms, its keyed names) is not this run's.
        self.object = layout.ingest_index(self.name(f"source:{source.kind}\n{source.location}", keyed=True))
        self.earlier: dict[str, dict] = {} if full else self._load()
        self.now: dict[str, dict] = {}

    def _load(self) -> dict[str, dict]:
        try:
            frame = pd.read_parquet(io.BytesIO(self.store.get(self.object)))
        except (KeyError, ValueError, OSError):  # none yet, or one that cannot be read: every file is read again
            return {}
        if set(INDEX_COLUMNS) - set(frame.columns):
            return {}
        frame = frame.astype(object).where(frame.notna(), None)
        return {row["name"]: row for row in frame[list(INDEX_COLUMNS)].to_dict("records")}

    def name(self, path: str, keyed: bool = False) -> str:
        if self.clear_names and not keyed:
            return path
        return hmac.new(self.key, f"ingest-index:{path}".encode(), hashlib.sha256).hexdigest()

    def known(self, path: str, identity: str) -> dict | None:
        """What an earlier run learnt from ``path``, if it is unchanged since (the same ``identity``)."""
        row = self.earlier.get(self.name(path))
        return row if row is not None and row["identity"] == identity else None

    def content(self, row: dict) -> Content:
        return Content(str(row["recording_id"]), str(row["format"]), int(row["size"]))

    def keep(self, path: str, identity: str, **values: object) -> None:
        """Remember ``path`` (unchanged while ``identity`` is) and ``values`` learnt from it."""
        name = self.name(path)
        self.now[name] = dict.fromkeys(INDEX_COLUMNS) | values | {"name": name, "identity": identity}

    def keeper(
        self,
        path: str,
        identity: str,
        content: Content,
        fields: Mapping[str, object] | None = None,
        notes: Sequence[str] = (),
        **stored: object,
    ) -> Keep:
        """How ``path`` is remembered once its recording is taken: its content, the candidate's ``fields`` (what the
        metadata said) with the participant's pseudonym, the ``notes`` on them, and other columns (``stored``)."""

        def keep(pid: str) -> None:
            described = None if fields is None else json.dumps({**fields, "participant_id": pid}, sort_keys=True)
            self.keep(
                path,
                identity,
                recording_id=content.recording_id,
                format=content.format,
                size=content.size,
                fields=described,
                notes=json.dumps(list(notes)) if notes else None,
                **stored,
            )

        return keep

    def candidate(
        self,
        path: str,
        row: dict,
        where: tuple[str, str],
        report: IngestReport,
        raw_label: str | None = None,
        **stored: object,
    ) -> Candidate:
        """The candidate an entry with ``fields`` describes (``where``: its original path and what describes it), as
        the metadata said it then, its notes said again; ``raw_label`` when it is not among them (telemetry's, from
        a label that may have come since, and ``stored`` with it)."""
        fields = json.loads(row["fields"])
        notes = json.loads(row["notes"]) if row["notes"] else []
        report.metadata_notes += notes
        pid = fields.pop("participant_id")
        content = self.content(row)
        keep = self.keeper(path, row["identity"], content, fields, notes, **stored)
        labelled = {} if "raw_label" in fields else {"raw_label": raw_label}
        return Candidate(content, *where, participant=pid, pseudonym=pid, keep=keep, **fields, **labelled)

    def telemetry_since(self) -> date | None:
        """The first day of telemetry to list: the newest day the index holds, less the lookback; None (every day)
        for an empty index."""
        keys = [key for row in self.earlier.values() for key in (row["name"], row["feedback"]) if key]
        days = [day for day in map(layout.telemetry_day, keys) if day is not None]
        return max(days) - timedelta(days=TELEMETRY_LOOKBACK_DAYS) if days else None

    def save(self) -> None:
        if self.now == self.earlier:  # nothing new: the same table is not written again
            return
        frame = pd.DataFrame(list(self.now.values()), columns=list(INDEX_COLUMNS))
        frame["size"] = frame["size"].astype("Int64")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        self.store.put(self.object, buffer.getvalue())


def parse_source(spec: str) -> Source:
    """Recognise a source from its spec: ``telemetry``, ``uploads``, a CSV manifest, or a dataset folder, each
    of the last two a local path or an ``s3://bucket/prefix``."""
    if spec in (TELEMETRY, UPLOADS):
        return Source(spec, "", spec)
    if spec.startswith("s3://"):
        return _store_source(spec.rstrip("/"))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return Source("manifest", str(path.resolve()), path.stem)
    if (path / "metadata.json").is_file() and (path / "raw").is_dir():
        return Source("covid19-cough", str(path.resolve()), path.resolve().name)
    if (path / "combined_data.csv").is_file():
        return Source("coswara", str(path.resolve()), path.resolve().name)
    if not path.exists():
        raise InputError(f"source {spec!r} does not exist: give a dataset folder, a .csv manifest, {_KINDS}")
    raise InputError(f"cannot recognise source {spec!r}: {_LAYOUTS}")


_KINDS = "an s3://bucket/prefix holding either, 'uploads' or 'telemetry'"
_LAYOUTS = (
    "expected 'telemetry', 'uploads', a .csv manifest, or a folder (or s3://bucket/prefix) with combined_data.csv "
    "(Coswara layout) or metadata.json + raw/ (covid19-cough layout)"
)


def _store_source(uri: str) -> Source:
    """A manifest or dataset in an object store, recognised by its keys as a folder is by its files."""
    name = posixpath.basename(urlparse(uri).path)
    if not name:
        raise InputError(f"source {uri!r} names a whole bucket: give the prefix that holds the dataset")
    if uri.lower().endswith(".csv"):
        folder, manifest = uri.rsplit("/", 1)
        if manifest not in _listed(folder):
            raise InputError(f"source {uri!r} does not exist: there is no such object")
        return Source("manifest", uri, posixpath.splitext(name)[0])
    keys = _listed(uri)
    if not keys:
        raise InputError(
            f"source {uri!r} holds nothing: copy a dataset there first (auscult upload FOLDER {posixpath.dirname(uri)})"
        )
    if "metadata.json" in keys and any(key.startswith("raw/") for key in keys):
        return Source("covid19-cough", uri, name)
    if "combined_data.csv" in keys:
        return Source("coswara", uri, name)
    raise InputError(f"cannot recognise source {uri!r}: {_LAYOUTS}")


def _listed(uri: str) -> list[str]:
    try:
        return open_store(uri).list()
    except InputError:
        raise
    except Exception as error:  # an unreachable store, an unknown bucket, credentials refused: say which source
        raise InputError(f"cannot list source {uri!r}: {error}") from None


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


def _extension(path: str | Path) -> str:
    return Path(path).suffix.lstrip(".").lower()


def _shown(value: object, limit: int = 400) -> str:
    """``value`` as a report shows it: quoted, escaped, and cut short."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _text(value: object, where: str, notes: list[str]) -> str | None:
    """A metadata value as text that a table, a log line and a spreadsheet can hold; None when there is none,
    or (with a note naming ``where``) when it is not text or longer than any real value."""
    if isinstance(value, bool):  # JSON's true/false: covid19-cough's label
        value = str(value).lower()
    elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        value = str(value)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        notes.append(f"{where}: {_shown(value, 60)} is not text: dropped")
        return None
    if len(value) > MAX_TEXT_CHARS:
        notes.append(f"{where}: {len(value)} characters, more than {MAX_TEXT_CHARS}: dropped")
        return None
    clean = "".join(c for c in value if unicodedata.category(c) not in _CONTROL).strip()
    if clean != value.strip():
        notes.append(f"{where}: control characters removed from {_shown(value, 60)}")
    return clean or None


def _age(value: object, where: str, notes: list[str]) -> int | None:
    """An age in whole years; None when there is none, or (with a note) when it is not one: not a number,
    negative, not finite, or beyond any human's."""
    if value is None or value == "":
        return None
    try:
        years = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond a float's range
        years = math.nan
    if not 0 <= years <= MAX_AGE:  # NaN fails too
        notes.append(f"{where}: {_shown(value, 60)} is not an age in years from 0 to {MAX_AGE}: dropped")
        return None
    return int(years)


def _metadata(
    values: Mapping[str, object], columns: Mapping[str, str], where: str, kind: str, notes: list[str]
) -> dict[str, object]:
    """Candidate fields from a row of a source's metadata (``columns``: field -> the source's column, JSON field
    or tag, which ``kind`` names), each value checked."""
    return {
        name: (_age if name == "age" else _text)(values.get(column), f"{where}, {kind} {column!r}", notes)
        for name, column in columns.items()
    }


def _locate(path: Path, root: Path) -> Path:
    """Where ``path`` really is, symbolic links resolved: a regular file inside ``root`` (itself resolved), or
    _Refused. Nothing is opened: a FIFO or a device is refused before it could block or stream forever."""
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root):
            raise _Refused(f"resolves to {_shown(str(real))}, outside {_shown(str(root))}")
        if any(unicodedata.category(c) in _CONTROL for c in str(path) + str(real)):
            raise _Refused("has control characters, or bytes that are not UTF-8, in its name")
        if not stat.S_ISREG(os.lstat(real).st_mode):
            raise _Refused("is not a regular file (a folder, FIFO, device or socket)")
    except FileNotFoundError:
        raise _Missing("is not there") from None
    except (OSError, RuntimeError, ValueError) as error:  # a loop of links, a name too long, a NUL byte
        raise _Refused(f"cannot be resolved: {error}") from None
    return real


def _open_inside(real: Path, root: Path) -> int:
    """A descriptor for ``real`` (inside ``root``), opened one name at a time from ``root`` without following a
    link, so that it is inside ``root`` whatever changed since :func:`_locate` looked: opening the whole path with
    O_NOFOLLOW would still follow a folder on the way that has been swapped for a link to elsewhere."""
    *folders, name = real.relative_to(root).parts
    # O_PATH (Linux) opens a folder as a place to look from, so that it needs no permission to list it.
    as_folder = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY
    folder = os.open(root, as_folder)
    try:
        for part in folders:
            inner = os.open(part, as_folder | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        # Nor waiting for a writer: a FIFO swapped in is refused below, not waited on.
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)


def _read_regular(real: Path, root: Path) -> bytes:
    return _read_file(real, root)[0]


def _read_file(real: Path, root: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a file :func:`_locate` accepted inside ``root``, and its status as it was before they were read
    (what the index keeps: a file that changes while it is read is read again next time). Opened from ``root``
    without following a link (:func:`_open_inside`) or waiting for a writer, and checked again once open, so that a
    file or folder swapped since cannot lead outside ``root`` or block."""
    try:
        fd = _open_inside(real, root)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Refused("is not a regular file (a folder, FIFO, device or socket)")
            if info.st_size > MAX_FILE_BYTES:
                raise _Refused(f"has {info.st_size} bytes, more than ingest reads ({MAX_FILE_BYTES})")
            return handle.read(), info
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # a link (or a file) where _locate saw a file or folder
            raise _Refused("changed after it was checked: a link now stands on its path") from None
        raise _Refused(f"cannot be read: {error.strerror}") from None


def _file_identity(info: os.stat_result) -> str:
    """What says a file has changed: its size, modification and change times, and inode. The change time cannot be
    set back by hand (as ``touch -d`` sets the modification time), and a file replaced by another has a new inode."""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def _recording(
    path: Path, root: Path, where: str, report: IngestReport, index: _Index | None = None
) -> tuple[Path, Content, Keep] | None:
    """The real location and content of the audio file ``path``, and how the index remembers it; None, with the
    reason in ``report``, when it is not there, not inside ``root``, not a regular file, or not audio. A file the
    index knows unchanged is checked as any other (where it resolves, what it is) but not opened."""
    try:
        real = _locate(path, root)
        if _extension(real) not in FORMATS:
            raise _Refused(f"is not a {'/'.join(FORMATS)} file")
        if index is None:
            return real, _content(_read_regular(real, root), real), _keep_nothing
        relative = real.relative_to(root).as_posix()
        try:
            identity = _file_identity(os.lstat(real))
        except FileNotFoundError:
            raise _Missing("is not there any more") from None
        except OSError as error:
            raise _Refused(f"cannot be read: {error.strerror}") from None
        if (known := index.known(relative, identity)) is not None:
            content = index.content(known)
        else:
            data, info = _read_file(real, root)
            content, identity = _content(data, real), _file_identity(info)
        return real, content, index.keeper(relative, identity, content)
    except _Missing as missing:
        report.missing.append(f"{where}: {_shown(str(path))} {missing}")
    except _Refused as refused:
        report.refused.append(f"{where}: {_shown(str(path))} {refused}")
    return None


def _listing(folder: Path, where: str, report: IngestReport) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        report.refused.append(f"{where}: cannot list {_shown(str(folder))}: {error.strerror}")
        return []


def _subfolders(folder: Path, where: str, report: IngestReport) -> list[Path]:
    """The folders in ``folder``; a link that leads nowhere (to nothing, or round in a loop) is refused, since it
    may stand for a folder of recordings, and other files are passed over."""
    found = []
    for path in _listing(folder, where, report):
        if path.is_dir():
            found.append(path)
        elif path.is_symlink() and not path.exists():
            try:
                target = f" ({_shown(os.readlink(path))})"
            except OSError:
                target = ""
            report.refused.append(f"{where}: {_shown(str(path))} is a link that leads nowhere{target}: not read")
    return found


def _contained_folder(folder: Path, root: Path, where: str, report: IngestReport) -> bool:
    """Whether ``folder`` (an existing folder) really is inside ``root``; when not, why goes to ``report``."""
    real = folder.resolve()
    if real.is_relative_to(root):
        return True
    report.refused.append(
        f"{where}: folder {_shown(str(folder))} resolves to {_shown(str(real))}, outside {_shown(str(root))}"
    )
    return False


def _decoded(data: bytes, shown: str) -> str:
    """A metadata file's bytes as text; InputError, naming the file and where it goes wrong, when not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"cannot read {shown}: it is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); "
            "save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
        ) from None


class _Tree(ABC):
    """A source's files, named by '/'-separated paths relative to its top (a folder, or a prefix in an object
    store), and read only from inside it."""

    @abstractmethod
    def shown(self, relative: str) -> str:
        """How reports and the recording table name ``relative``: its path or URI."""

    @abstractmethod
    def text(self, relative: str) -> str:
        """A metadata file's text; InputError naming it when it is not UTF-8 text inside the source."""

    @abstractmethod
    def folders(self, relative: str, where: str, report: IngestReport) -> list[tuple[str, bool]]:
        """The folders in folder ``relative``, each with whether it may be read (it is inside the source; when
        not, why goes to ``report``)."""

    @abstractmethod
    def entries(self, relative: str, where: str, report: IngestReport) -> list[str]:
        """The names in folder ``relative``, sorted."""

    @abstractmethod
    def readable(self, relative: str, where: str, report: IngestReport) -> bool:
        """Whether folder ``relative`` is there and inside the source; when it is outside, why goes to ``report``."""

    @abstractmethod
    def recording(self, relative: str, where: str, report: IngestReport) -> tuple[str, Content, Keep] | None:
        """Where the audio file ``relative`` really is, its content (from the index when it is unchanged since an
        earlier run read it), and how the index remembers it; None, with the reason in ``report``, when it is not
        there, not inside the source, not a regular file, or not audio."""


class _FolderTree(_Tree):
    def __init__(self, root: Path, index: _Index | None = None):
        self.root = root  # resolved
        self.index = index

    def shown(self, relative: str) -> str:
        return str(self.root / relative)

    def text(self, relative: str) -> str:
        path = self.root / relative
        try:
            data = _read_regular(_locate(path, self.root), self.root)
        except _Refused as refused:
            raise InputError(f"cannot read {path}: it {refused}") from None
        return _decoded(data, str(path))

    def folders(self, relative: str, where: str, report: IngestReport) -> list[tuple[str, bool]]:
        return [
            (folder.relative_to(self.root).as_posix(), _contained_folder(folder, self.root, where, report))
            for folder in _subfolders(self.root / relative, where, report)
        ]

    def entries(self, relative: str, where: str, report: IngestReport) -> list[str]:
        return [path.name for path in _listing(self.root / relative, where, report)]

    def readable(self, relative: str, where: str, report: IngestReport) -> bool:
        folder = self.root / relative
        return folder.is_dir() and _contained_folder(folder, self.root, where, report)

    def recording(self, relative: str, where: str, report: IngestReport) -> tuple[str, Content, Keep] | None:
        found = _recording(self.root / relative, self.root, where, report, self.index)
        return None if found is None else (str(found[0]), found[1], found[2])


class _PrefixTree(_Tree):
    """The objects under ``prefix`` in ``store``: listed once, read by key. An object store has no links and no
    folders, so what stays inside is a matter of names: a path that leads above the prefix is refused."""

    def __init__(self, store: ObjectStore, prefix: str = "", index: _Index | None = None):
        self.store, self.prefix, self.index = store, prefix, index
        self.listed: dict[str, Listed] = {found.key[len(prefix) :]: found for found in store.listing(prefix)}
        self.keys = set(self.listed)
        # Folder -> each name directly in it, and whether that is a folder (has keys below it): built once.
        self.tree: dict[str, dict[str, bool]] = {}
        for key in self.keys:
            parts = key.split("/")
            for depth, name in enumerate(parts):
                folder = self.tree.setdefault("/".join(parts[:depth]), {})
                folder[name] = folder.get(name, False) or depth < len(parts) - 1

    def shown(self, relative: str) -> str:
        return self.store.uri(self.prefix + relative)

    def _inside(self, relative: str) -> str:
        key = posixpath.normpath(relative)
        if relative.startswith("/") or key == ".." or key.startswith("../"):
            raise _Refused(f"leads outside {_shown(self.shown(''))}")
        if any(unicodedata.category(c) in _CONTROL for c in relative):
            raise _Refused("has control characters in its name")
        return key

    def identity(self, relative: str) -> str:
        """What says the object at ``relative`` (a listed key) has changed: its ETag and size."""
        found = self.listed[relative]
        return f"{found.version}:{found.size}"

    def _get(self, relative: str) -> bytes:
        key = self._inside(relative)
        if key not in self.keys:
            raise _Missing("is not there")
        if self.listed[key].size > MAX_FILE_BYTES:  # said by the listing: not read to find out
            raise _Refused(f"has {self.listed[key].size} bytes, more than ingest reads ({MAX_FILE_BYTES})")
        try:
            data = self.store.get(self.prefix + key)
        except KeyError:
            raise _Missing("is not there any more") from None
        if len(data) > MAX_FILE_BYTES:
            raise _Refused(f"has {len(data)} bytes, more than ingest reads ({MAX_FILE_BYTES})")
        return data

    def text(self, relative: str) -> str:
        try:
            return _decoded(self._get(relative), self.shown(relative))
        except _Refused as refused:
            raise InputError(f"cannot read {self.shown(relative)}: it {refused}") from None

    def _children(self, relative: str) -> dict[str, bool]:
        """Each name directly in folder ``relative``, and whether it is a folder."""
        return dict(sorted(self.tree.get(relative.strip("/"), {}).items()))

    def folders(self, relative: str, where: str, report: IngestReport) -> list[tuple[str, bool]]:
        return [(posixpath.join(relative, name), True) for name, folder in self._children(relative).items() if folder]

    def entries(self, relative: str, where: str, report: IngestReport) -> list[str]:
        return list(self._children(relative))

    def readable(self, relative: str, where: str, report: IngestReport) -> bool:
        return relative.strip("/") in self.tree

    def recording(self, relative: str, where: str, report: IngestReport) -> tuple[str, Content, Keep] | None:
        try:
            if _extension(relative) not in FORMATS:
                raise _Refused(f"is not a {'/'.join(FORMATS)} file")
            key = self._inside(relative)
            shown = self.shown(key)
            if self.index is None:
                return shown, _content(self._get(relative), shown), _keep_nothing
            identity = self.identity(key) if key in self.keys else ""
            if (known := self.index.known(key, identity)) is not None:
                content = self.index.content(known)
            else:
                content = _content(self._get(relative), shown)
            return shown, content, self.index.keeper(key, identity, content)
        except _Missing as missing:
            report.missing.append(f"{where}: {_shown(self.shown(relative))} {missing}")
        except _Refused as refused:
            report.refused.append(f"{where}: {_shown(self.shown(relative))} {refused}")
        return None


def _csv_rows(path: str, text: str, required: tuple[str, ...], notes: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The rows of a metadata CSV that has ``required`` columns, each with where it is (file and line); InputError
    naming the file otherwise, or when its header names a column twice (which of the two is meant cannot be
    known). Fields beyond the header are dropped, with a note naming the row."""
    # csv's limit on a field's length is process-wide, and a field over it fails the whole file without naming
    # the value: lift it while this file is read, so that an oversized value reaches _text, which names it.
    limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise InputError(f"cannot read {path} as CSV (line {reader.line_num}): {error}") from None
    finally:
        csv.field_size_limit(limit)
    header = reader.fieldnames or []
    # An unnamed column is never read: a spreadsheet's trailing empty columns are not repeats.
    repeated = [name for name, count in Counter(header).items() if name and count > 1]
    if repeated:
        raise InputError(
            f"{path} names the column(s) {', '.join(map(_shown, repeated))} more than once in its header: keep one"
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (its header has: {_shown(header)})")
    located = []
    for line, row in enumerate(rows, start=2):
        where = f"{posixpath.basename(path)} line {line}"
        extra = row.pop(None, None)  # DictReader's key for fields past the header
        if extra is not None:
            notes.append(
                f"{where}: {len(extra)} field(s) beyond the header's {len(header)} columns: "
                f"ignored ({_shown(extra, 80)})"
            )
        located.append((where, row))
    return located


def _one_entry_each(
    entries: Iterable[tuple[str, str, Mapping[str, object]]], columns: Mapping[str, str], kind: str, notes: list[str]
) -> dict[str, _Entry]:
    """Metadata ``entries`` (key, where, values) by key: a participant id or a file name. The first entry for a key
    is used; a later one that says something else leaves a note naming both, and one that gives another label
    marks the key's recordings for review (its ``conflict``): which of the two is right, only a person can say."""
    found: dict[str, _Entry] = {}
    for key, where, values in entries:
        first = found.get(key)
        if first is None:
            found[key] = _Entry(where, values)
            continue
        # Compared as they would be used, cleaned; what is wrong with a value is noted once, for the entry used.
        used, other = (_metadata(v, columns, where, kind, []) for v in (first.values, values))
        differ = [
            f"{kind} {column!r}: {_shown(first.values.get(column), 60)} and {_shown(values.get(column), 60)}"
            for name, column in columns.items()
            if used[name] != other[name]
        ]
        if not differ:
            continue
        note = f"{first.where} and {where} both describe {_shown(key)}, differently ({'; '.join(differ)}): "
        if _same_label(used.get("raw_label"), other.get("raw_label")):
            notes.append(note + f"{first.where} is used")
            continue
        conflict = (
            f"{first.where} and {where} give different labels "
            f"({_shown(used['raw_label'], 60)} and {_shown(other['raw_label'], 60)})"
        )
        found[key] = replace(first, conflict=conflict if first.conflict is None else f"{first.conflict}; {conflict}")
        notes.append(note + f"{first.where} is used, but the labels differ: its recordings go to review")
    return found


def _tree(source: Source, index: _Index | None = None) -> _Tree:
    """The files of a dataset source, or of the folder (or prefix) that a manifest's paths start from."""
    top = posixpath.dirname(source.location) if source.kind == "manifest" else source.location
    return _PrefixTree(open_store(top), index=index) if top.startswith("s3://") else _FolderTree(Path(top), index)


def _coswara(source: Source, tree: _Tree, report: IngestReport) -> Iterator[Candidate]:
    metadata = "combined_data.csv"
    rows = _csv_rows(tree.shown(metadata), tree.text(metadata), ("id",), report.metadata_notes)
    people = _one_entry_each(
        ((row["id"], where, row) for where, row in rows), COSWARA_COLUMNS, "column", report.metadata_notes
    )
    seen = set()
    for group, readable in tree.folders("", source.name, report):
        if not readable:
            continue
        for folder, readable in tree.folders(group, source.name, report):
            name = posixpath.basename(folder)
            seen.add(name)  # a refused folder is there: its participant is not "missing"
            if not readable:
                continue
            person = people.get(name, _Entry(metadata, {}))
            fields = _metadata(person.values, COSWARA_COLUMNS, person.where, "column", report.metadata_notes)
            for file in tree.entries(folder, source.name, report):
                if _extension(file) not in FORMATS:
                    continue
                path = posixpath.join(folder, file)
                if (found := tree.recording(path, source.name, report)) is None:
                    continue
                shown = tree.shown(path)
                yield Candidate(
                    content=found[1],
                    original_path=shown,
                    described_by=shown,
                    participant=name,
                    sound_type=_sound_type(posixpath.splitext(file)[0]),
                    conflict=f"{shown}: {person.conflict}" if person.conflict else None,
                    keep=found[2],
                    **fields,
                )
    report.missing += [
        f"{source.name}: participant {_shown(pid)} has metadata but no folder" for pid in people if pid not in seen
    ]


def _covid19_entries(tree: _Tree, name: str, notes: list[str]) -> dict[str, _Entry]:
    """metadata.json's entries by file name (see :func:`_one_entry_each`); InputError naming the file and what is
    wrong with it."""
    shown = tree.shown(name)
    try:
        entries = json.loads(tree.text(name))
    except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser goes
        raise InputError(f"cannot read {shown} as JSON: {error}") from None
    if not isinstance(entries, list):
        raise InputError(f"{shown} is not a list of entries: its top level is {_shown(entries, 80)}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise InputError(f"{shown}: entry {index} is not an object with a text 'filename': {_shown(entry, 80)}")
    return _one_entry_each(
        ((entry["filename"], f"{name} entry {index}", entry) for index, entry in enumerate(entries)),
        COVID19_COUGH_FIELDS,
        "field",
        notes,
    )


def _covid19_cough(source: Source, tree: _Tree, report: IngestReport) -> Iterator[Candidate]:
    metadata = "metadata.json"
    entries = _covid19_entries(tree, metadata, report.metadata_notes)
    listing = tree.entries("raw", source.name, report) if tree.readable("raw", source.name, report) else []
    for file in listing:
        if _extension(file) not in FORMATS:
            continue
        path = f"raw/{file}"
        if (found := tree.recording(path, source.name, report)) is None:
            continue
        where = f"{metadata} entry {_shown(file)}"
        entry = entries.get(file, _Entry(where, {}))
        shown = tree.shown(path)
        yield Candidate(
            content=found[1],
            original_path=shown,
            described_by=shown,
            # The dataset has no participant ids: each recording is its own participant.
            participant=posixpath.splitext(file)[0],
            participant_kind=PER_RECORDING,
            sound_type="cough",
            conflict=f"{shown}: {entry.conflict}" if entry.conflict else None,
            keep=found[2],
            **_metadata(entry.values, COVID19_COUGH_FIELDS, where, "field", report.metadata_notes),
        )
    present = set(listing)
    report.missing += [
        f"{source.name}: {_shown(name)} is in metadata.json but not in raw/" for name in entries if name not in present
    ]


def _manifest(source: Source, tree: _Tree, report: IngestReport) -> Iterator[Candidate]:
    manifest = posixpath.basename(source.location)
    rows = _csv_rows(tree.shown(manifest), tree.text(manifest), ("path",), report.metadata_notes)
    for where, row in rows:
        if not row.get("path"):
            report.missing.append(f"{where}: no path")
            continue
        if (found := tree.recording(row["path"], where, report)) is None:
            continue
        real, content, keep = found
        fields = _metadata(row, MANIFEST_COLUMNS, where, "column", report.metadata_notes)
        participant = fields.pop("participant")
        sound_type = fields.pop("sound_type")
        stem = posixpath.splitext(posixpath.basename(real))[0]
        yield Candidate(
            content=content,
            original_path=real,
            described_by=f"{real} ({where})",
            participant=str(participant or stem),
            participant_kind=GIVEN if participant else PER_RECORDING,
            sound_type=str(sound_type or _sound_type(stem)),
            keep=keep,
            **fields,
        )


def _telemetry_audio_digest(key: str) -> str | None:
    """The content hash that a telemetry audio key names; None when ``key`` is not such a key."""
    digest = key.rpartition("/")[2].removesuffix(".wav")
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) and key == layout.telemetry_audio(digest) else None


def _telemetry(store: ObjectStore, report: IngestReport, index: _Index) -> Iterator[Candidate]:
    """What production heard: each request record with its audio and its request's newest feedback label.

    Records and labels are filed by day (:mod:`auscult.layout`). They are listed from the watermark, the newest day
    the index holds less :data:`TELEMETRY_LOOKBACK_DAYS` (a record spooled through a store outage lands late), and
    only the keys the index does not hold are read. What the index holds for a record (its audio's hash, its tags'
    values and notes, or why it was refused) is taken from there; a label that came since, for a request read
    before or now, is applied to it. A label whose record has not come yet is kept for it while it is within the
    days listed."""
    earlier = index.earlier
    since = index.telemetry_since()
    known = set(earlier) | {row["feedback"] for row in earlier.values() if row["feedback"]}
    recorded = telemetry.read(store, since, known)
    # Request id -> the key of its newest label and the label: a newer label's key sorts later.
    labels = {row["request_id"]: (row["feedback"], row["label"]) for row in earlier.values() if row["feedback"]}
    for request_id, keys in recorded.feedback_keys.items():
        if request_id not in labels or keys[-1] > labels[request_id][0]:
            labels[request_id] = (keys[-1], recorded.feedback[request_id])
    for key, why in recorded.unreadable.items():
        report.refused.append(f"telemetry object {key}: {why}")
        index.keep(key, "", refused=f"telemetry object {key}: {why}")
    for name, row in earlier.items():
        if row["request_id"] is None:  # an object that is no record or label this project wrote, read before
            report.refused.append(row["refused"])
            index.keep(name, "", refused=row["refused"])
    # A record's entry, not a label's: a label waiting for its record is filed under its own key.
    records = {name for name, row in earlier.items() if row["request_id"] and row["feedback"] != name}
    requests = set()
    for key in sorted(set(recorded.records) | records):
        row, record = earlier.get(key), recorded.records.get(key)
        request_id = record["request_id"] if record is not None else row["request_id"]
        requests.add(request_id)
        where = f"telemetry record {key}"
        feedback, label = labels.get(request_id, (None, None))
        raw_label = _text(label, f"{where}, feedback", report.metadata_notes)
        stored = {"request_id": request_id, "feedback": feedback, "label": label}
        if row is not None and row["recording_id"] is not None:
            audio_key = layout.telemetry_audio(row["recording_id"])
            yield index.candidate(key, row, (store.uri(audio_key), where), report, raw_label, **stored)
        elif row is not None:  # a record refused, or whose audio is missing, when it was read
            report.refused += [row["refused"]] if row["refused"] else []
            report.missing += [row["missing"]] if row["missing"] else []
            index.keep(key, "", refused=row["refused"], missing=row["missing"], request_id=request_id)
        elif (candidate := _telemetry_record(store, key, record, report, index, raw_label, stored)) is not None:
            yield candidate
    for request_id, (feedback, label) in labels.items():
        day = layout.telemetry_day(feedback)
        if request_id not in requests and day is not None and (since is None or day >= since):
            index.keep(feedback, "", feedback=feedback, label=label, request_id=request_id)


def _telemetry_record(
    store: ObjectStore, key: str, record: dict, report: IngestReport, index: _Index, raw_label: str | None, stored: dict
) -> Candidate | None:
    """The candidate a record read now describes; None, with the reason in ``report`` (and the index), when its
    audio is missing or it is refused."""
    where = f"telemetry record {key}"
    audio_key, tags = record["audio_key"], record["tags"]
    # Serving stores the participant tag already pseudonymised (pseudonym.telemetry_participant).
    tag = tags.get("participant")
    digest = _telemetry_audio_digest(audio_key)
    refused = missing = None
    if digest is None:
        refused = f"{where}: {_shown(audio_key)} is not a telemetry audio key"
    elif tag and not is_pseudonym(tag):
        refused = f"{where}: its participant tag {_shown(tag, 60)} is not a pseudonymised id"
    else:
        try:
            data = store.get(audio_key)
            if hashlib.sha256(data).hexdigest() != digest:
                refused = f"{where}: the audio at {audio_key} does not hash to its name: it was altered"
        except KeyError:
            missing = f"{where} names audio {audio_key} that is not stored"
    if refused or missing:
        report.refused += [refused] if refused else []
        report.missing += [missing] if missing else []
        index.keep(key, "", refused=refused, missing=missing, request_id=stored["request_id"])
        return None
    notes: list[str] = []
    fields = _metadata(tags, TELEMETRY_TAGS, where, "tag", notes)
    report.metadata_notes += notes
    fields["sound_type"] = str(fields["sound_type"] or "unknown")
    kind = PSEUDONYM if tag else PER_RECORDING
    content = _content(data, audio_key)
    return Candidate(
        content=content,
        original_path=store.uri(audio_key),
        described_by=where,
        participant=str(tag or record["request_id"]),
        participant_kind=kind,
        raw_label=raw_label,
        keep=index.keeper(key, "", content, {"participant_kind": kind, **fields}, notes, **stored),
        **fields,
    )


def _sidecar(tree: _PrefixTree, name: str, notes: list[str]) -> dict[str, object]:
    """The metadata of an upload from its sidecar ``name`` (what is wrong with a value goes to ``notes``); _Refused
    saying what is wrong with it."""
    try:
        data = tree._get(name)
    except _Missing:
        raise _Refused(f"has no sidecar {name!r} (an upload still under way is read on a later run)") from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise _Refused(f"has a sidecar of {len(data)} bytes, more than {MAX_SIDECAR_BYTES}")
    try:
        values = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError) as error:
        raise _Refused(f"has a sidecar that is not JSON ({error})") from None
    if not isinstance(values, dict):
        raise _Refused(f"has a sidecar that is not a JSON object (its top level is a {type(values).__name__})")
    where = f"sidecar {tree.shown(name)}"
    unknown = sorted(set(values) - set(UPLOAD_FIELDS.values()))
    if unknown:
        notes.append(f"{where}: field(s) {_shown(unknown, 120)} are not read")
    fields = _metadata(values, UPLOAD_FIELDS, where, "field", notes)
    if not isinstance(values.get("participant"), str) or fields["participant"] is None:
        raise _Refused("has a sidecar that names no participant (text in 'participant'): the split needs one")
    return fields


def _uploads(store: ObjectStore, report: IngestReport, index: _Index) -> Iterator[Candidate]:
    """App uploads in the landing prefix: each recording with its sidecar. A recording whose sidecar is missing or
    broken is not read, and its quarantine record (:func:`layout.upload_quarantine`) says why; a sidecar with no
    recording is reported missing. An upload is known to the index by its recording and its sidecar together: while
    neither changes, neither is read again (a sidecar that comes later makes it new)."""
    tree = _PrefixTree(store, layout.UPLOADS)
    sidecars = {key for key in tree.keys if key.endswith(".json")}
    for key in sorted(tree.keys - sidecars):
        sidecar = f"{posixpath.splitext(key)[0]}.json"
        sidecars.discard(sidecar)
        identity = f"{tree.identity(key)}|{tree.identity(sidecar) if sidecar in tree.keys else '-'}"
        if (known := index.known(key, identity)) is not None:
            if known["refused"] is None:
                shown = tree.shown(posixpath.normpath(key))
                yield index.candidate(key, known, (shown, f"{shown} ({sidecar})"), report)
                continue
            report.refused.append(known["refused"])  # its quarantine record was written when it was read
            report.metadata_notes += json.loads(known["notes"]) if known["notes"] else []
            index.keep(key, identity, refused=known["refused"], notes=known["notes"])
            continue
        notes: list[str] = []
        try:
            if _extension(key) not in FORMATS:
                raise _Refused(f"is not a {'/'.join(FORMATS)} file or a .json sidecar")
            fields = _sidecar(tree, sidecar, notes)
        except _Refused as refused:
            reason = f"upload {_shown(tree.shown(key))} {refused}"
            report.refused.append(reason)
            report.metadata_notes += notes
            store.put_json(layout.upload_quarantine(layout.UPLOADS + key), {"upload": key, "reason": reason})
            index.keep(key, identity, refused=reason, notes=json.dumps(notes) if notes else None)
            continue
        report.metadata_notes += notes
        if (found := tree.recording(key, UPLOADS, report)) is None:
            continue
        shown, content, _ = found
        participant = fields.pop("participant")
        fields["sound_type"] = str(fields["sound_type"] or _sound_type(posixpath.basename(key)))
        yield Candidate(
            content=content,
            original_path=shown,
            described_by=f"{shown} ({sidecar})",
            participant=str(participant),
            keep=index.keeper(key, identity, content, {"participant_kind": GIVEN, **fields}, notes),
            **fields,
        )
    report.missing += [f"sidecar {_shown(tree.shown(name))} has no recording beside it" for name in sorted(sidecars)]


def _candidates(
    source: Source, store: ObjectStore, report: IngestReport, index: _Index
) -> tuple[str, Iterator[Candidate]]:
    """A source's recordings, and the origin the table records for them: "telemetry", "uploads", "synthetic" for
    a cohort that ``auscult generate`` wrote (its marker file), "dataset" otherwise."""
    if source.kind == TELEMETRY:
        return TELEMETRY, _telemetry(store, report, index)
    if source.kind == UPLOADS:
        return UPLOADS, _uploads(store, report, index)
    readers: dict[str, Callable[[Source, _Tree, IngestReport], Iterator[Candidate]]] = {
        "coswara": _coswara,
        "covid19-cough": _covid19_cough,
        "manifest": _manifest,
    }
    tree = _tree(source, index)  # an object-store source is listed once, here
    made = source.kind != "manifest" and synth.MARKER_FILE in tree.entries("", source.name, IngestReport())
    return ("synthetic" if made else "dataset"), readers[source.kind](source, tree, report)


def _same_label(one: object, other: object) -> bool:
    """Whether two raw labels say the same, whatever their case and spacing: the label stage reads them so."""
    return str(one or "").strip().lower() == str(other or "").strip().lower()


def _disagreement(first: _Claim, other: _Claim) -> str | None:
    """Why two byte-identical copies cannot both be right, naming each; None when they agree. A source without
    participant ids says nothing about whose a recording is, so only labels are compared then."""
    differences = []
    if None not in (first.participant_id, other.participant_id) and first.participant_id != other.participant_id:
        differences.append("participants")
    if not _same_label(first.label, other.label):
        differences.append(f"labels ({_shown(first.label, 60)} and {_shown(other.label, 60)})")
    if not differences:
        return None
    what = " and ".join(differences)
    return f"{first.described_by} and {other.described_by} are byte-identical but name different {what}"


def nothing_found(sources: list[str], report: IngestReport) -> str:
    """Why a run that ingested no recordings cannot go on, and what to give it."""
    problems = [
        f"{len(found)} {what}" for found, what in ((report.refused, "refused"), (report.missing, "missing")) if found
    ] + ([f"{report.erased} erased"] if report.erased else [])
    why = f" ({', '.join(problems)}: the task's log names each and why)" if problems else ""
    return (
        f"no recordings in sources {sources}{why}. A first run needs data: copy a dataset to the store "
        "(auscult upload FOLDER s3://BUCKET/datasets) and give the prefix it prints in the pipeline's 'sources', "
        f"or have the app backend drop recordings with JSON sidecars under {layout.UPLOADS} in the store and give "
        f"'{UPLOADS}'; '{TELEMETRY}' holds only what a served model has heard"
    )


def ingest(
    sources: list[str],
    store: ObjectStore,
    pseudonym_key: bytes,
    progress: Callable[[str], None] = emit,
    full: bool = False,
) -> tuple[pd.DataFrame, IngestReport]:
    """Copy every recording of ``sources`` into the lake; return the recording table and a report. Files unchanged
    since an earlier run are not read again (see the module's docstring); ``full`` reads every file, and rebuilds
    each source's index from what it reads."""
    if not pseudonym_key:
        raise InputError(
            f"a pseudonymisation key is required: set {PSEUDONYM_KEY_ENV} (on a cluster, from the pseudonym-key Secret)"
        )
    report = IngestReport()
    erased = tombstones(store)
    rows: dict[str, dict] = {}
    claims: dict[str, _Claim] = {}
    indices = []
    for spec in sources:
        source = parse_source(spec)
        index = _Index(store, source, pseudonym_key, full)
        indices.append(index)
        count = read = known = 0
        origin, candidates = _candidates(source, store, report, index)
        for candidate in candidates:
            content = candidate.content
            recording_id = content.recording_id
            read, known = read + (content.data is not None), known + (content.data is None)
            pid = candidate.pseudonym or (
                candidate.participant
                if candidate.participant_kind == PSEUDONYM
                else participant_id(source.name, candidate.participant, pseudonym_key)
            )
            if erased and is_erased(erased, pseudonym_key, recording_id, pid):
                report.erased += 1
                continue
            candidate.keep(pid)
            claim = _Claim(
                candidate.described_by,
                None if candidate.participant_kind == PER_RECORDING else pid,
                candidate.raw_label,
            )
            if recording_id in rows:
                kept = rows[recording_id]
                disputes = [kept["conflict"], candidate.conflict]  # a copy kept once keeps every copy's dispute
                # An empty file says nothing about anyone (curate quarantines it): its copies never conflict.
                if content.size and (conflict := _disagreement(claims[recording_id], claim)):
                    report.conflicts.append(conflict)
                    disputes.append(conflict)
                else:
                    report.duplicates.append(
                        f"{candidate.original_path} is byte-identical to {kept['original_path']}: kept once"
                    )
                kept["conflict"] = "; ".join(filter(None, disputes)) or None
                continue
            key = layout.lake(recording_id, content.format)
            # Known content is in the lake: its index entry was written after its lake object, and only erasure
            # deletes one (its recordings are tombstoned, above). Whatever is read is checked.
            is_new = content.data is not None and not store.exists(key)
            report.new_objects += is_new
            claims[recording_id] = claim
            rows[recording_id] = {
                "recording_id": recording_id,
                "participant_id": pid,
                "source": source.name,
                "origin": origin,
                "uri": store.put(key, content.data) if is_new and content.data is not None else store.uri(key),
                "original_path": candidate.original_path,
                "sound_type": candidate.sound_type,
                "format": content.format,
                "size_bytes": content.size,
                "age_band": age_band(candidate.age),
                "sex": candidate.sex,
                "device": candidate.device,
                "raw_label": candidate.raw_label,
                "conflict": candidate.conflict,
            }
            count += 1
        report.by_source[source.name] = count
        report.files_read += read
        report.files_known += known
        progress(
            str(
                Note(
                    "ingest",
                    f"{source.name} ({source.kind}): {count} recordings; {read} files read, "
                    f"{known} unchanged since an earlier run",
                )
            )
        )
    frame = table.validate(pd.DataFrame(list(rows.values()), columns=list(table.INGEST_COLUMNS)), "ingest")
    report.rows = len(frame)
    for index in indices:  # only now that every source was read: a run that fails leaves the indices as they were
        index.save()
    return frame, report


@dataclass
class Upload:
    """What :func:`upload` copied: the source to give a run, and each file it did not copy, with why."""

    source: str
    copied: int = 0
    unchanged: int = 0  # already there with the same bytes
    refused: list[str] = field(default_factory=list)


def upload(folder: Path, destination: str, progress: Callable[[str], None] = emit) -> Upload:
    """Copy the dataset ``folder`` (Coswara or covid19-cough layout) to ``destination/<its name>/``, under the
    rules ingest reads by: only regular files inside the folder, links followed only when they stay inside; what
    is not copied is named with why. Returns the URI to give a run as its source."""
    source = parse_source(str(folder))
    if source.kind not in ("coswara", "covid19-cough"):
        raise InputError(f"{folder} is not a dataset folder: {_LAYOUTS}")
    root = Path(source.location)
    tree, report = _FolderTree(root), IngestReport()
    store = open_store(f"{destination.rstrip('/')}/{source.name}")
    files: list[str] = []
    pending, visited = [""], {root}
    while pending:
        folder_path = pending.pop()
        inner = dict(tree.folders(folder_path, source.name, report))
        for path, readable in inner.items():
            real = (root / path).resolve()
            if readable and real in visited:  # a link back to a folder on the way: copied once, not forever
                report.refused.append(f"{_shown(str(root / path))} leads to {_shown(str(real))}, copied already")
            elif readable:
                visited.add(real)
                pending.append(path)
        files += [
            posixpath.join(folder_path, name)
            for name in tree.entries(folder_path, source.name, report)
            if posixpath.join(folder_path, name) not in inner
        ]
    result = Upload(source=store.root, refused=report.refused)
    for done, relative in enumerate(sorted(files), start=1):
        if done % 100 == 0 or done == len(files):
            progress(str(Step("upload", done, len(files), "files")))
        path = root / relative
        try:
            data = _read_regular(_locate(path, root), root)
        except _Refused as refused:
            result.refused.append(f"{_shown(str(path))} {refused}")
            continue
        try:
            there = store.get(relative)
        except KeyError:
            there = None
        if there == data:
            result.unchanged += 1
        else:
            store.put(relative, data)
            result.copied += 1
    return result
