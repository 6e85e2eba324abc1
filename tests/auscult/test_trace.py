"""Following the lineage record: request -> model -> run -> raw recordings, and recording -> models -> deployments."""

import json

import pytest

from auscult import layout
from auscult.errors import InputError
from auscult.registry import Registry
from auscult.trace import markdown, model_lines, model_trace, recording_trace, request_trace
from pipelines.cli import main
from tests.auscult.governed import RUN, copy_of


def test_a_request_leads_to_its_model_run_and_training_recordings(governed, any_store, tmp_path):
    version, prepared = copy_of(governed, any_store, tmp_path / "root")
    registry = Registry(any_store)
    record_key = any_store.list(layout.TELEMETRY_RECORDS)[0]
    # The served request of the fixture names v0001 and no run; point it at the registered model as serving does.
    record = any_store.get_json(record_key)
    any_store.put_json(record_key, {**record, "model_version": version, "model_run": RUN.run_id})
    chain = request_trace(registry, record["request_id"])
    assert chain["request"]["model_version"] == version and chain["request"]["model_run"] == RUN.run_id
    assert chain["run"]["run"] == RUN.name and chain["in_production"]
    train = prepared[prepared["split"] == "train"]
    assert {r["recording_id"] for r in chain["recordings"]} == set(train["recording_id"])
    originals = dict(zip(train["recording_id"], train["original_path"], strict=True))
    assert all(r["original_path"] == originals[r["recording_id"]] for r in chain["recordings"])
    assert chain["data"]["split_sizes"]["test"] == int((prepared["split"] == "test").sum())
    assert [a["action"] for a in chain["acts"]] == ["register", "promote"]
    lines = model_lines(chain, recordings=3)
    assert f"trained by run {RUN.name}" in lines[1] and lines[-1].startswith("    ... ")
    assert "## Lineage" in markdown(chain) and "raw recordings" not in markdown(chain)
    with pytest.raises(InputError, match="no telemetry record"):
        request_trace(registry, "no-such-request")


def test_a_recording_leads_to_every_run_and_model_that_used_it(governed, store, tmp_path):
    version, prepared = copy_of(governed, store, tmp_path / "root")
    registry = Registry(store)
    tested = prepared[prepared["split"] == "test"]["recording_id"].iloc[0]
    found = recording_trace(registry, tested)
    assert found["origin"]["source"] == prepared["source"].iloc[0]
    assert found["runs"] == [{"run_id": RUN.run_id, "run": RUN.name, "stages": {"ingest": "ingested", "prep": "test"}}]
    assert found["models"][0]["version"] == version and found["models"][0]["split"] == "test"
    assert found["models"][0]["production"][0]["until"] is None
    quarantined = prepared[prepared["status"] == "quarantined"]["recording_id"].iloc[0]
    assert recording_trace(registry, quarantined)["runs"][0]["stages"]["curate"].startswith("quarantined: ")
    with pytest.raises(InputError, match="names no recording"):
        recording_trace(registry, "0" * 64)
    with pytest.raises(InputError, match="no registered version"):
        model_trace(registry, "v9999-nothing")


def test_the_lineage_command_prints_text_or_json(governed, store, tmp_path, capsys):
    version, _ = copy_of(governed, store, tmp_path / "root")
    assert main(["lineage", "--version", version, "--json", "--store", store.root]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == version
    assert main(["lineage", "--version", version, "--all", "--store", store.root]) == 0
    assert "... " not in capsys.readouterr().out
    assert main(["lineage", "--version", "v9", "--store", store.root]) == 1
    assert "no registered version 'v9'" in capsys.readouterr().err
