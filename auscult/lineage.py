"""Lineage: what each run read, made and decided, as OpenLineage run events appended to the object store.

Every pipeline task writes one ``COMPLETE`` event when it succeeds: its run (a child of the pipeline run, named
in the standard ``parent`` facet), its parameters, the code and image it ran, and the content hash of every
artifact it read or wrote. Governance acts (registration, promotion, approval, rejection, rollback, a plan
change, an erasure) are events too, with an ``auscult_audit`` run facet saying who, why, and on what evidence;
``auscult audit`` lists them.

An event names recordings only by reference: the ids a stage split or set aside are in a membership object
(``lineage/runs/``), where each recording came from in an origin object (``lineage/recordings/``). Those two,
not the append-only events, are what erasure edits.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from auscult import __version__, layout
from auscult.store import ObjectStore, json_bytes

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
PRODUCER = f"https://github.com/auscult/auscult/tree/v{__version__}"
FACET_SCHEMAS = "https://auscult.io/spec/facets/1-0-0/"  # our own facets' schemas are named under here
NAMESPACE = "auscult"
ARTIFACTS = "kfp"  # the dataset namespace of per-run artifacts: KFP keeps them, not the store
AUDIT_FACET = "auscult_audit"

# Set by an image build: the commit it was built from, and the image's own reference.
CODE_VERSION_ENV = "AUSCULT_CODE_VERSION"
IMAGE_ENV = "AUSCULT_IMAGE_REF"
IMAGE_BUILD_ENV = "AUSCULT_IMAGE_BUILD"  # the digest of the image build's inputs (scripts/images.py)


@dataclass(frozen=True)
class RunRef:
    """A pipeline run as KFP names it: its job id (a UUID on a cluster, a number in the local runner), its name
    (the run's folder under a local pipeline root), and the pipeline."""

    job_id: str
    name: str
    pipeline: str = "auscult-training"

    def __post_init__(self) -> None:
        # KFP's local runner names a ParallelFor iteration's tasks "<run>/for-loop-N-iteration-K": the run is the part
        # before the slash (a Kubernetes name has none).
        object.__setattr__(self, "name", self.name.split("/", 1)[0])

    @property
    def run_id(self) -> str:
        """The run's OpenLineage id: KFP's own when it is a UUID, a stable UUID derived from it otherwise."""
        try:
            return str(uuid.UUID(self.job_id))
        except ValueError:
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}#{self.pipeline}/{self.name}/{self.job_id}"))

    def task_run_id(self, task: str) -> str:
        return str(uuid.uuid5(uuid.UUID(self.run_id), task))


@cache
def code_version() -> dict[str, str | None]:
    """The package version, the commit (an image's build argument, or this checkout's HEAD), the image and the
    digest of its build's inputs (its ``io.auscult.build`` label)."""
    commit = os.environ.get(CODE_VERSION_ENV)
    if not commit:
        try:
            here = Path(__file__).resolve().parent
            found = subprocess.run(
                ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
            )
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if found.returncode == 0:
                commit = found.stdout.strip() + ("-modified" if dirty.stdout.strip() else "")
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {
        "package": __version__,
        "commit": commit,
        "image": os.environ.get(IMAGE_ENV),
        "image_build": os.environ.get(IMAGE_BUILD_ENV),
    }


def actor(by: str | None = None) -> dict[str, str | None]:
    """Who acts: the operating-system user and host (in a pod: its name and namespace), and who they say they
    act for (``--by``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    found: dict[str, str | None] = {"user": user, "host": socket.gethostname(), "by": by}
    namespace_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if namespace_file.is_file():
        found["namespace"] = namespace_file.read_text().strip()
    return found


def who(acting: Mapping[str, object]) -> str:
    """One line for an actor: ``by (user@host)``, or ``user@host``."""
    machine = f"{acting.get('user')}@{acting.get('host')}"
    return f"{acting['by']} ({machine})" if acting.get("by") else machine


def facet(schema: str, /, **fields: object) -> dict:
    """A custom facet: its fields, and the producer and schema (``schema``.json) every OpenLineage facet carries."""
    return {"_producer": PRODUCER, "_schemaURL": f"{FACET_SCHEMAS}{schema}.json", **fields}


def digest(path: str | Path) -> str:
    """The content hash of an artifact: of its bytes, or for a folder, of each file's relative path and hash."""
    path = Path(path)
    if path.is_file():
        return _file_digest(path)
    lines = (f"{p.relative_to(path).as_posix()}\0{_file_digest(p)}\n" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def artifact(run: RunRef, output: str, path: str | Path | None = None) -> dict:
    """A per-run artifact as an OpenLineage dataset named by run and ``output`` ("task/name" of the task that wrote
    it, so that a reader's input and its writer's output are one dataset); the writer records its content hash."""
    facets = {"auscult_content": facet("ContentFacet", sha256=digest(path))} if path is not None else {}
    return {"namespace": ARTIFACTS, "name": f"{run.name}/{output}", "facets": facets}


def stored(store: ObjectStore, key: str, **facets: dict) -> dict:
    """An object of the store as an OpenLineage dataset (namespace: the store's root; name: the key)."""
    return {"namespace": store.root, "name": key, "facets": facets}


def event(
    job: str,
    run_id: str,
    *,
    event_type: str = "COMPLETE",
    parent: RunRef | None = None,
    inputs: Iterable[dict] = (),
    outputs: Iterable[dict] = (),
    run_facets: Mapping[str, dict] | None = None,
    at: datetime | None = None,
) -> dict:
    """One OpenLineage RunEvent."""
    facets = dict(run_facets or {})
    facets["auscult_code"] = facet("CodeFacet", **code_version())
    if parent is not None:
        facets["parent"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": {"runId": parent.run_id},
            "job": {"namespace": NAMESPACE, "name": parent.pipeline},
        }
        facets["auscult_kfp_run"] = facet("KfpRunFacet", name=parent.name, job_id=parent.job_id)
    return {
        "eventType": event_type,
        "eventTime": (at or datetime.now(UTC)).isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id, "facets": facets},
        "job": {
            "namespace": NAMESPACE,
            "name": job,
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                    "processingType": "BATCH",
                    "integration": "KUBEFLOW" if parent else "AUSCULT",
                    "jobType": "TASK" if parent else "COMMAND",
                }
            },
        },
        "inputs": list(inputs),
        "outputs": list(outputs),
    }


class Lineage:
    """The lineage record of one store: events appended, never changed; memberships and origins beside them."""

    def __init__(self, store: ObjectStore):
        self.store = store

    def emit(self, record: dict) -> str:
        at = datetime.fromisoformat(record["eventTime"])
        return self.store.put(layout.lineage_event(at, uuid.uuid4().hex[:12]), json_bytes(record))

    def events(self) -> list[dict]:
        found = [self.store.get_json(key) for key in self.store.list(layout.LINEAGE_EVENTS)]
        return sorted(found, key=lambda e: e["eventTime"])

    def task(
        self,
        run: RunRef,
        task: str,
        *,
        parameters: Mapping[str, object] | None = None,
        inputs: Iterable[str] = (),
        outputs: Mapping[str, str | Path] | None = None,
        stored_inputs: Iterable[dict] = (),
        stored_outputs: Iterable[dict] = (),
        run_facets: Mapping[str, dict] | None = None,
    ) -> dict:
        """Record that ``task`` of ``run`` completed: its parameters, the artifacts it read ("task/name" of their
        writers) and the content hashes of those it wrote (name -> path)."""
        facets = {"auscult_parameters": facet("ParametersFacet", **dict(parameters or {})), **(run_facets or {})}
        record = event(
            f"{run.pipeline}.{task}",
            run.task_run_id(task),
            parent=run,
            inputs=[*(artifact(run, read) for read in inputs), *stored_inputs],
            outputs=[*(artifact(run, f"{task}/{n}", p) for n, p in (outputs or {}).items()), *stored_outputs],
            run_facets=facets,
        )
        self.emit(record)
        return record

    def audit(
        self,
        action: str,
        acting: Mapping[str, object],
        reason: str,
        *,
        subject: Mapping[str, object],
        evidence: Mapping[str, object] | None = None,
        run: RunRef | None = None,
        inputs: Iterable[dict] = (),
        outputs: Iterable[dict] = (),
    ) -> dict:
        """Record a governance act: ``action`` on ``subject`` by ``acting``, why, and on what evidence."""
        audit = facet("AuditFacet", action=action, actor=dict(acting), reason=reason, subject=dict(subject))
        if evidence is not None:
            audit["evidence"] = dict(evidence)
        record = event(
            f"auscult.{action}",
            run.task_run_id(action) if run else str(uuid.uuid4()),
            parent=run,
            inputs=inputs,
            outputs=outputs,
            run_facets={AUDIT_FACET: audit},
        )
        self.emit(record)
        return record

    def audit_trail(self) -> list[dict]:
        """Every governance act, oldest first: the ``auscult_audit`` facets with the event's time."""
        return [
            {"time": e["eventTime"], **e["run"]["facets"][AUDIT_FACET]}
            for e in self.events()
            if AUDIT_FACET in e["run"]["facets"]
        ]

    def record_members(self, run: RunRef, stage: str, members: Mapping[str, object]) -> dict:
        """Keep which recordings ``stage`` of ``run`` took in or set aside (``members``: group -> ids, or id ->
        reason); return the membership's facet for the stage's event (its key, counts and content hash)."""
        key = layout.lineage_run(run.run_id, stage)
        body = json_bytes({"run": run.name, "stage": stage, "members": dict(members)})
        self.store.put(key, body)
        counts = {group: len(ids) for group, ids in members.items() if isinstance(ids, list | dict)}
        return facet("MembershipFacet", key=key, sha256=hashlib.sha256(body).hexdigest(), counts=counts)

    def membership(self, run_id: str, stage: str) -> dict | None:
        """What ``record_members`` kept: run name, stage, members, and how many erasure removed."""
        try:
            return self.store.get_json(layout.lineage_run(run_id, stage))
        except KeyError:
            return None

    def members(self, run_id: str, stage: str) -> dict:
        """The members ``record_members`` kept (``{}`` when there are none)."""
        kept = self.membership(run_id, stage)
        return kept["members"] if kept else {}

    def runs(self) -> list[str]:
        """The run ids that kept a membership."""
        keys = self.store.list(layout.LINEAGE_RUNS)
        return sorted({key[len(layout.LINEAGE_RUNS) :].split("/")[0] for key in keys})

    def note_origins(self, recordings: Iterable[Mapping[str, str]]) -> int:
        """Where each recording came from (recording_id, source, original_path, participant_id), for those without
        an origin yet (the first copy ingested keeps it): what erasure deletes. Returns how many were new."""
        known = set(self.store.list(layout.LINEAGE_RECORDINGS))
        new = 0
        for row in recordings:
            key = layout.lineage_recording(row["recording_id"])
            if key not in known:
                origin = {name: row[name] for name in ("source", "original_path", "participant_id")}
                self.store.put(key, json_bytes(origin))
                known.add(key)
                new += 1
        return new

    def origin(self, recording_id: str) -> dict | None:
        try:
            return self.store.get_json(layout.lineage_recording(recording_id))
        except KeyError:
            return None
