"""The lineage record: OpenLineage run events in the store, memberships and origins beside them."""

import uuid
from datetime import datetime

import jsonschema

from auscult import layout
from auscult.lineage import SCHEMA_URL, Lineage, RunRef, actor, digest, event, facet

# The parts of OpenLineage's RunEvent (spec 2-0-2) that a consumer relies on, as its JSON schema states them:
# required fields, the event types, a UUID run id, URIs for producer and schemas, and facets carrying both.
FACETS = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["_producer", "_schemaURL"],
        "properties": {"_producer": {"type": "string", "format": "uri"}, "_schemaURL": {"type": "string"}},
    },
}
DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": FACETS},
}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": FACETS},
        },
        "inputs": {"type": "array", "items": DATASET},
        "outputs": {"type": "array", "items": DATASET},
    },
}


def conforms(record: dict) -> None:
    jsonschema.validate(record, RUN_EVENT, format_checker=jsonschema.FormatChecker())
    uuid.UUID(record["run"]["runId"])
    datetime.fromisoformat(record["eventTime"])
    assert record["schemaURL"] == SCHEMA_URL


def test_a_local_run_gets_a_stable_uuid_and_each_task_its_own():
    run = RunRef("12345678", "auscult-training-2026-12-01-18-00-00")
    assert run.run_id == RunRef("12345678", run.name).run_id and str(uuid.UUID(run.run_id)) == run.run_id
    assert run.task_run_id("prep") != run.task_run_id("train")
    # The local runner names a ParallelFor iteration's run "<run>/for-loop-N-iteration-K": the same run.
    assert RunRef("12345678", f"{run.name}/for-loop-3-iteration-1").run_id == run.run_id
    cluster = RunRef("0b7c4a2e-9f8d-4c1b-a2e3-5f6a7b8c9d0e", "auscult-training-x7k2p")
    assert cluster.run_id == "0b7c4a2e-9f8d-4c1b-a2e3-5f6a7b8c9d0e", "KFP's own run id when it is a UUID"


def test_task_events_are_openlineage_run_events_naming_their_pipeline_run(any_store, tmp_path):
    (tmp_path / "table.parquet").write_bytes(b"table")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pt").write_bytes(b"weights")
    run = RunRef("12345678", "auscult-training-test")
    lineage = Lineage(any_store)
    members = lineage.record_members(run, "prep", {"train": ["a" * 64], "validation": [], "test": ["b" * 64]})
    lineage.task(run, "prep", outputs={"prepared": tmp_path / "table.parquet"})
    lineage.task(
        run,
        "train",
        parameters={"epochs": 3},
        inputs=["prep/prepared"],
        outputs={"model": tmp_path / "model"},
        run_facets={"auscult_membership": members},
    )
    written, recorded = lineage.events()
    conforms(written)
    conforms(recorded)
    # What train read is the dataset prep wrote: one name, hashed once, by its writer.
    assert recorded["inputs"][0]["name"] == written["outputs"][0]["name"] == f"{run.name}/prep/prepared"
    assert written["outputs"][0]["facets"]["auscult_content"]["sha256"] == digest(tmp_path / "table.parquet")
    facets = recorded["run"]["facets"]
    assert facets["parent"]["run"]["runId"] == run.run_id and facets["parent"]["job"]["name"] == "auscult-training"
    assert facets["auscult_kfp_run"]["name"] == run.name and facets["auscult_parameters"]["epochs"] == 3
    assert facets["auscult_code"]["package"] and "commit" in facets["auscult_code"]
    assert recorded["job"]["name"] == "auscult-training.train"
    assert recorded["outputs"][0]["name"] == f"{run.name}/train/model"
    # The event names the membership, not the recordings in it: erasure edits the membership alone.
    assert "a" * 64 not in str(recorded) and facets["auscult_membership"]["counts"] == {
        "train": 1,
        "validation": 0,
        "test": 1,
    }
    assert lineage.members(run.run_id, "prep")["test"] == ["b" * 64] and lineage.runs() == [run.run_id]


def test_a_folder_digest_changes_with_any_file_and_any_name(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "a").write_bytes(b"1")
    before = digest(folder)
    (folder / "a").write_bytes(b"2")
    changed = digest(folder)
    (folder / "a").rename(folder / "b")
    assert len({before, changed, digest(folder)}) == 3


def test_governance_acts_are_events_with_who_why_and_evidence(any_store):
    lineage = Lineage(any_store)
    acting = actor("Dr Example")
    assert acting["by"] == "Dr Example" and acting["user"] and acting["host"]
    lineage.audit("approve", acting, "reviewed the subgroups", subject={"version": "v0002"}, evidence={"auroc": 0.8})
    lineage.emit(event("auscult-training.ingest", str(uuid.uuid4()), run_facets={"x": facet("X")}))
    (act,) = lineage.audit_trail()
    assert act["action"] == "approve" and act["actor"]["by"] == "Dr Example"
    assert act["reason"] == "reviewed the subgroups" and act["evidence"] == {"auroc": 0.8}
    assert act["subject"] == {"version": "v0002"} and datetime.fromisoformat(act["time"])
    for recorded in lineage.events():
        conforms(recorded)
    keys = any_store.list(layout.LINEAGE_EVENTS)
    assert len(keys) == 2 and all(k.startswith(layout.LINEAGE_EVENTS) for k in keys)


def test_the_first_copy_ingested_keeps_the_origin(store):
    lineage = Lineage(store)
    first = {"recording_id": "c" * 64, "source": "coswara", "original_path": "c/P1/a.wav", "participant_id": "p" * 24}
    copy = {**first, "source": "other", "original_path": "other/x.wav", "participant_id": "q" * 24}
    assert lineage.note_origins([first, copy]) == 1 and lineage.note_origins([copy]) == 0
    assert lineage.origin("c" * 64)["source"] == "coswara" and lineage.origin("d" * 64) is None


def test_key_layout_of_memberships_and_origins():
    version = "v0001-abc"
    assert layout.lineage_run("r", "prep") == "lineage/runs/r/prep.json"
    assert layout.lineage_recording("ab" + "0" * 62) == f"lineage/recordings/ab/ab{'0' * 62}.json"
    assert layout.version_status("m", version, 1) == f"models/m/versions/{version}/status/000001.json"
