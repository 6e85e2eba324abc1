"""A run's working data in the object store: its prep shards' windows and what a training job's workers read
and write. Derived for one run and needed by none after it, so it is kept only while the run may need it:

- the exit task (the run report, which runs however the run ends) of a run that succeeded deletes it;
- working data of a run that failed (kept for a retry) or never reached its end (a killed pod, a deleted run) is
  deleted by a later run's exit task once :data:`RETENTION_DAYS` have passed since the run began;
- erasure deletes the working data of every run that ingested an erased participant's recordings.

Why not KFP artifacts: KFP's launcher copies every input artifact whole into a task's pod, so one artifact holding
every window would be copied into each training worker and into validate. In the store, a reader reads the rows it
needs, in ranges (:class:`auscult.stages.prep.ShardedWindows`); the KFP artifacts keep the index (which recording,
which shard, which row), so the UI and the lineage still show what each task used.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from auscult import layout
from auscult.store import ObjectStore, json_bytes

RETENTION_DAYS = 7


def begin(store: ObjectStore, run_id: str, now: datetime | None = None) -> None:
    """Note when the run's working data began (once), so that the retention rule can tell its age."""
    stamp = {"run_id": run_id, "started": (now or datetime.now(UTC)).isoformat()}
    store.put_if_absent(layout.run_work_started(run_id), json_bytes(stamp))


def publish(store: ObjectStore, run_id: str, key: str, path: Path) -> str:
    """Put a local file into the run's working data (``key`` from :mod:`auscult.layout`); return its URI."""
    if not key.startswith(layout.run_work(run_id)):
        raise ValueError(f"{key!r} is not working data of run {run_id!r}")
    begin(store, run_id)
    return store.put_file(key, path)


def release(store: ObjectStore, run_id: str) -> int:
    """Delete the run's working data; return how many objects went."""
    keys = store.list(layout.run_work(run_id))
    # The start stamp last: a sweep that meets a half-released run still knows its age.
    for key in sorted(keys, key=lambda k: k == layout.run_work_started(run_id)):
        store.delete(key)
    return len(keys)


def sweep(store: ObjectStore, now: datetime | None = None, retention_days: float = RETENTION_DAYS) -> list[str]:
    """Release the working data of every run older than ``retention_days`` (or of unknown age); return the runs."""
    now = now or datetime.now(UTC)
    runs = sorted({key[len(layout.WORK) :].split("/", 1)[0] for key in store.list(layout.WORK)})
    stale = []
    for run_id in runs:
        try:
            started = datetime.fromisoformat(store.get_json(layout.run_work_started(run_id))["started"])
        except (KeyError, ValueError, TypeError):
            started = None
        if started is None or now - started > timedelta(days=retention_days):
            release(store, run_id)
            stale.append(run_id)
    return stale
