"""A local write-ahead spool: what serving must write to the object store is on disk, fsynced, before the
request it belongs to is answered.

Each serving process appends to a folder of its own and holds an exclusive ``flock`` on it for as long as it
lives. The kernel drops that lock when the process dies, however it dies (SIGKILL included), so a folder whose
lock can be taken is an orphan: another process adopts its entries and uploads them. One entry is one file
holding every write of one event (a request's audio and its record, or a feedback label), written under a
temporary name, fsynced and renamed, so an entry is either whole or absent.

On a cluster the spool is an ``emptyDir``: it survives a restart of the container, not the loss of the pod.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_SUFFIX = ".spool"
LOCK_FILE = ".lock"
OUTAGE_FILE = ".store-outage.json"  # shared by every process of the spool: when the store began refusing, and why


class SpoolFull(RuntimeError):
    """The spool holds as much as it may: nothing more can be accepted until the uploader catches up."""


@dataclass(frozen=True)
class Write:
    key: str
    data: bytes
    if_absent: bool = False  # content-addressed: skip the upload when the store already holds the key


def encode(writes: list[Write]) -> bytes:
    header = {"writes": [{"key": w.key, "size": len(w.data), "if_absent": w.if_absent} for w in writes]}
    return json.dumps(header).encode() + b"\n" + b"".join(w.data for w in writes)


def decode(payload: bytes) -> list[Write]:
    """The writes of one entry; ValueError when the entry is not one this module wrote."""
    head, _, body = payload.partition(b"\n")
    try:
        entries = json.loads(head)["writes"]
        sizes = [int(entry["size"]) for entry in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable spool header: {error}") from None
    if sum(sizes) != len(body):
        raise ValueError(f"spool entry holds {len(body)} bytes, its header says {sum(sizes)}")
    writes, offset = [], 0
    for entry, size in zip(entries, sizes, strict=True):
        writes.append(Write(str(entry["key"]), body[offset : offset + size], bool(entry.get("if_absent"))))
        offset += size
    return writes


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Spool:
    """This process's spool folder under ``root``, bounded to ``max_bytes`` of entries not yet uploaded."""

    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Locked under a hidden name first, so that no other process can take it for an orphan meanwhile.
        hidden = self.root / f".{name}"
        hidden.mkdir(parents=True)
        self._lock_file = open(hidden / LOCK_FILE, "w")  # noqa: SIM115 - held for the spool's life
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.folder = self.root / name
        os.replace(hidden, self.folder)
        self._guard = threading.Lock()
        self._sequence = 0
        self.bytes = 0

    def append(self, writes: list[Write]) -> Path:
        """Write one entry durably (fsynced, renamed into place); SpoolFull when over the bound."""
        payload = encode(writes)
        with self._guard:
            if self.bytes + len(payload) > self.max_bytes:
                raise SpoolFull(
                    f"the telemetry spool {self.root} holds {self.bytes / 2**20:.1f} MiB not yet uploaded "
                    f"(its limit is {self.max_bytes / 2**20:.0f} MiB)"
                )
            self.bytes += len(payload)
            self._sequence += 1
            name = f"{self._sequence:012d}{ENTRY_SUFFIX}"
        partial = self.folder / f"{name}.partial"  # not an entry until renamed
        try:
            with open(partial, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.folder / name)
            _fsync_folder(self.folder)
        except BaseException:
            with self._guard:
                self.bytes -= len(payload)
            partial.unlink(missing_ok=True)
            raise
        return self.folder / name

    def pending(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{ENTRY_SUFFIX}"))

    def remove(self, entry: Path) -> None:
        size = entry.stat().st_size
        entry.unlink()
        with self._guard:
            self.bytes -= size

    def set_aside(self, entry: Path, reason: str) -> Path:
        """Keep an entry that cannot be uploaded out of the way, for an operator to look at; never delete it."""
        target = self.root / "unreadable" / f"{self.folder.name}-{entry.name}"
        target.parent.mkdir(exist_ok=True)
        size = entry.stat().st_size
        os.replace(entry, target)
        with self._guard:
            self.bytes -= size
        log.error("telemetry spool: %s set aside as %s: %s", entry.name, target, reason)
        return target

    def outage(self) -> tuple[float, str] | None:
        """Since when (epoch seconds) and with what error the store has refused this spool's uploads, if it does."""
        try:
            state = json.loads((self.root / OUTAGE_FILE).read_text())
            return float(state["since"]), str(state["error"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):  # half-written by another process: ask again next time
            return None

    def report_outage(self, error: str) -> bool:
        """Record that an upload failed; True when this starts an outage (no process had reported one)."""
        current = self.outage()
        if current is not None and current[1] == error:
            return False
        state = {"since": current[0] if current else time.time(), "error": error}
        partial = self.folder / f"{OUTAGE_FILE}.partial"
        partial.write_text(json.dumps(state))
        os.replace(partial, self.root / OUTAGE_FILE)
        return current is None

    def end_outage(self) -> bool:
        """Record that the store accepts uploads again; True when an outage was on record."""
        try:
            (self.root / OUTAGE_FILE).unlink()
        except FileNotFoundError:
            return False
        return True

    def adopt_orphans(self) -> int:
        """Move the entries of every folder whose process is gone into this one; return how many."""
        adopted = 0
        for folder in sorted(self.root.iterdir()):
            if folder == self.folder or folder.name.startswith(".") or not (folder / LOCK_FILE).is_file():
                continue
            try:
                lock = open(folder / LOCK_FILE)  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue  # adopted by another process meanwhile
            with lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                for entry in sorted(folder.glob(f"*{ENTRY_SUFFIX}")):
                    size = entry.stat().st_size
                    os.replace(entry, self.folder / f"{folder.name}-{entry.name}")
                    with self._guard:
                        self.bytes += size
                    adopted += 1
                for leftover in folder.iterdir():  # half-written entries of a process that died writing them
                    leftover.unlink()
                folder.rmdir()
        if adopted:
            _fsync_folder(self.folder)
            log.warning("telemetry spool: adopted %d entries left by a stopped process", adopted)
        return adopted

    def close(self) -> None:
        """Release this folder: removed when empty, otherwise left for the next process to adopt."""
        if self._lock_file.closed:
            return
        if not self.pending():
            for leftover in self.folder.iterdir():
                leftover.unlink()
            self.folder.rmdir()
        self._lock_file.close()
