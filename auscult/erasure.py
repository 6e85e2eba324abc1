"""Erasure: remove one participant's data from the object store and a local pipeline root, and stop it coming back.

The participant is named as a source names them (their pseudonym is keyed on source and id). Erasure deletes
their raw recordings, quarantine records, origins, telemetry records, audio and feedback; removes their ids from
every other object (a run's membership, a registered model's training reference) and from every table, window
file and review queue of the pipeline root; leaves keyed tombstones that ingest checks, so the same content or
participant is not ingested again; and flags every model version trained, tuned or tested on their data. The
audit event says who erased, when and why, and how much, never whom.

Artifacts that KFP keeps on a cluster are out of reach: the report names the runs whose artifacts hold the
participant, for an operator to delete.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from auscult import layout
from auscult.errors import InputError
from auscult.lineage import Lineage
from auscult.pseudonym import participant_id
from auscult.registry import Registry
from auscult.store import ObjectStore, json_bytes

# Objects erasure deletes rather than edits, and those it never reads (audio: named by its hash).
DELETED_PREFIXES = (layout.LAKE, layout.QUARANTINE, layout.LINEAGE_RECORDINGS, layout.TELEMETRY_AUDIO)
# A window file is edited through the index beside it (prep.drop_windows); model weights and images name no one.
BINARY_SUFFIXES = (".npy", ".onnx", ".pt", ".png", ".wav")
PARQUET_MAGIC = b"PAR1"  # a KFP artifact has no file extension: a table is known by its bytes


@dataclass
class ErasureReport:
    erasure_id: str
    recordings: int = 0
    telemetry_requests: int = 0
    deleted_objects: int = 0
    edited_objects: int = 0
    edited_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    flagged_versions: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # runs whose KFP artifacts held the participant

    def lines(self) -> list[str]:
        lines = [
            f"erasure {self.erasure_id}: {self.recordings} recordings and {self.telemetry_requests} served requests; "
            f"{self.deleted_objects} objects deleted and {self.edited_objects} edited in the store; "
            f"{len(self.edited_files)} files edited and {len(self.removed_files)} removed in the pipeline root",
        ]
        lines += [
            f"  removed {path} (it named the participant; rerun the stage that wrote it)" for path in self.removed_files
        ]
        for version in self.flagged_versions:
            lines.append(f"  {version} was trained, tuned or tested on the erased data: retrain and replace it")
        if self.runs:
            lines.append(
                "  runs whose KFP artifacts held the participant (delete them in the KFP UI or its artifact store): "
                + ", ".join(self.runs)
            )
        return lines


def tombstone_hash(key: bytes, value: str) -> str:
    """A tombstone's name: keyed, so that the store never says which content or participant was erased."""
    return hmac.new(key, f"erased:{value}".encode(), hashlib.sha256).hexdigest()


def tombstones(store: ObjectStore) -> set[str]:
    """The keyed hashes of everything erased from ``store`` (what ingest checks a recording against)."""
    return {key[len(layout.TOMBSTONES) :].removesuffix(".json") for key in store.list(layout.TOMBSTONES)}


def is_erased(found: Collection[str], key: bytes, recording_id: str, participant: str) -> bool:
    return tombstone_hash(key, recording_id) in found or tombstone_hash(key, participant) in found


def _needle_pattern(needles: Collection[str]) -> re.Pattern:
    return re.compile("|".join(re.escape(n) for n in sorted(needles)))


def _ids_in_tables(root: Path, pseudonym: str) -> set[str]:
    """Recording ids that the pipeline root's tables give the participant (data ingested before origins were
    kept has none)."""
    import pandas as pd

    found: set[str] = set()
    for path in _data_files(root):
        with open(path, "rb") as handle:
            if handle.read(4) != PARQUET_MAGIC:
                continue
        frame = pd.read_parquet(path)
        if {"participant_id", "recording_id"} <= set(frame.columns):
            found |= set(frame.loc[frame["participant_id"] == pseudonym, "recording_id"].astype(str))
    return found


def _data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in BINARY_SUFFIXES)


def _scrub_json(value: object, pattern: re.Pattern) -> tuple[object, int]:
    """``value`` without any string, list item or key naming an erased id; and how many went."""
    if isinstance(value, str):
        return (None, 1) if pattern.search(value) else (value, 0)
    if isinstance(value, list):
        kept, removed = [], 0
        for item in value:
            if isinstance(item, str) and pattern.search(item):
                removed += 1
                continue
            clean, count = _scrub_json(item, pattern)
            kept.append(clean)
            removed += count
        return kept, removed
    if isinstance(value, dict):
        kept_dict, removed = {}, 0
        for name, item in value.items():
            if pattern.search(str(name)):
                removed += 1
                continue
            clean, count = _scrub_json(item, pattern)
            kept_dict[name] = clean
            removed += count
        return kept_dict, removed
    return value, 0


def _scrub_table(data: bytes, pattern: re.Pattern) -> tuple[bytes | None, object]:
    """A Parquet table without the rows naming an erased id (None when none does), and the rows' mask."""
    import pandas as pd

    frame = pd.read_parquet(io.BytesIO(data))
    hit = pd.Series(False, index=frame.index)
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            hit |= frame[column].astype(str).str.contains(pattern, na=False)
    if not hit.any():
        return None, hit
    out = io.BytesIO()
    frame[~hit].to_parquet(out, index=False)
    return out.getvalue(), hit


def scrub(data: bytes, pattern: re.Pattern) -> bytes | None:
    """``data`` without what names an erased id: a Parquet table without those rows, JSON without those values,
    text (CSV, HTML, Markdown, logs) without those lines; ``data`` itself when nothing names one; None for other
    bytes that name one (they cannot be edited, and are deleted)."""
    if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
        edited, _ = _scrub_table(data, pattern)
        return data if edited is None else edited
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        binary = re.compile(pattern.pattern.encode())
        return None if binary.search(data) else data
    if not pattern.search(text):
        return data
    try:
        value = json.loads(text)
    except ValueError:
        return "".join(line for line in text.splitlines(keepends=True) if not pattern.search(line)).encode()
    clean, removed = _scrub_json(value, pattern)
    if isinstance(clean, dict) and "members" in clean:
        clean["erased"] = int(clean.get("erased", 0)) + removed
    return json_bytes(clean) if json_bytes(value) == data else json.dumps(clean).encode()


def _scrub_pipeline_root(root: Path, pattern: re.Pattern, report: ErasureReport) -> None:
    from auscult.stages.prep import INDEX_FILE, SHARDS_FILE, drop_windows

    for path in _data_files(root):
        data = path.read_bytes()
        if path.name == INDEX_FILE and (path.parent / SHARDS_FILE).is_file():
            edited, hit = _scrub_table(data, pattern)
            if edited is None:
                continue
            report.edited_files += [str(p) for p in drop_windows(path.parent, ~hit.to_numpy())]
            continue
        edited = scrub(data, pattern)
        if edited is None:
            path.unlink()
            report.removed_files.append(str(path))
        elif edited is not data:
            path.write_bytes(edited)
            report.edited_files.append(str(path))


def erase(
    store: ObjectStore,
    source: str,
    participant: str,
    key: bytes,
    acting: Mapping[str, object],
    reason: str,
    pipeline_root: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> ErasureReport:
    """Erase the participant that ``source`` calls ``participant`` (``key``: the pseudonymisation key).

    Tombstones are written first and origins deleted last, so an erasure that stops half-way (a store outage)
    can be run again and finds the same recordings, and nothing it had reached can be ingested meanwhile."""
    from auscult.serving import telemetry

    pseudonym = participant_id(source, participant, key)
    report = ErasureReport(uuid.uuid4().hex[:12])
    lineage, registry = Lineage(store), Registry(store)
    origins = set()
    for origin_key in store.list(layout.LINEAGE_RECORDINGS):
        if store.get_json(origin_key).get("participant_id") == pseudonym:
            origins.add(origin_key)
    ids = {key_name.rpartition("/")[2].removesuffix(".json") for key_name in origins}
    if pipeline_root is not None:
        ids |= _ids_in_tables(pipeline_root, pseudonym)
    recorded = telemetry.read(store)
    doomed: set[str] = set()
    for record_key, record in recorded.records.items():
        if record.get("tags", {}).get("participant") == pseudonym:
            report.telemetry_requests += 1
            doomed |= {record_key, record["audio_key"], *recorded.feedback_keys.get(record["request_id"], [])}
            ids.add(record["audio_key"].rpartition("/")[2].removesuffix(".wav"))
    if not ids and store.exists(layout.tombstone(tombstone_hash(key, pseudonym))):
        erased = store.get_json(layout.tombstone(tombstone_hash(key, pseudonym)))
        raise InputError(
            f"participant {participant!r} of source {source!r} was erased at {erased['at']} "
            f"(erasure {erased['erasure']})"
        )
    if not ids:
        raise InputError(
            f"nothing in {store.root} belongs to participant {participant!r} of source {source!r}: check the source's "
            "name (the folder's name, or 'telemetry' for a participant tag sent to the server), the id, and that the "
            "pseudonymisation key is the one ingest used"
        )
    report.recordings = len(ids)
    progress(f"{len(ids)} recordings and {report.telemetry_requests} served requests of the participant")
    needles = ids | {pseudonym}
    pattern = _needle_pattern(needles)
    at = datetime.now(UTC).isoformat()
    for value in sorted(needles):
        store.put(layout.tombstone(tombstone_hash(key, value)), json_bytes({"erasure": report.erasure_id, "at": at}))
    for recording_id in ids:
        doomed.add(layout.quarantine(recording_id))
        doomed |= set(store.list(f"{layout.LAKE}{recording_id[:2]}/{recording_id}."))
    # Runs and versions that used the data, read before the memberships lose the ids.
    used_by: dict[str, str] = {}
    for run_id in lineage.runs():
        names = None
        for stage in ("ingest", "curate", "prep"):
            kept = lineage.membership(run_id, stage)
            if kept and pattern.search(json.dumps(kept["members"])):
                names = kept["run"]
                if stage == "prep":
                    used_by[run_id] = kept["run"]
        if names:
            report.runs.append(names)
            # The run's working data (its windows) may hold any recording it ingested: it goes whole.
            doomed |= set(store.list(layout.run_work(run_id)))
    for version in registry.versions():
        run_id = registry.card(version).get("lineage", {}).get("run_id")
        if run_id in used_by:
            flag = {"erasure": report.erasure_id, "at": at, "run": used_by[run_id]}
            registry.flag_erased(version, report.erasure_id, flag)
            report.flagged_versions.append(version)
    for object_key in sorted(doomed):
        if store.exists(object_key):
            store.delete(object_key)
            report.deleted_objects += 1
    skipped = (*DELETED_PREFIXES, layout.TOMBSTONES)
    for object_key in store.list():
        if object_key.startswith(skipped) or object_key.endswith(BINARY_SUFFIXES):
            continue
        data = store.get(object_key)
        edited = scrub(data, pattern)
        if edited is None:
            store.delete(object_key)
            report.deleted_objects += 1
        elif edited is not data:
            store.put(object_key, edited)
            report.edited_objects += 1
    if pipeline_root is not None:
        _scrub_pipeline_root(pipeline_root, pattern, report)
    for origin_key in sorted(origins):
        store.delete(origin_key)
        report.deleted_objects += 1
    lineage.audit(
        "erase",
        acting,
        reason,
        subject={"erasure": report.erasure_id},
        evidence={
            "recordings": report.recordings,
            "telemetry_requests": report.telemetry_requests,
            "deleted_objects": report.deleted_objects,
            "edited_objects": report.edited_objects,
            "edited_files": len(report.edited_files),
            "removed_files": len(report.removed_files),
            "flagged_versions": report.flagged_versions,
            "runs": report.runs,
        },
    )
    return report
