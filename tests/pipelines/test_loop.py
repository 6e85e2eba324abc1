"""The whole loop at small size: KFP local runs, Seldon serving over HTTP, monitoring, retraining."""

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from auscult import layout, synth
from auscult.pseudonym import PSEUDONYM_KEY_ENV, participant_id
from auscult.registry import Registry
from auscult.stages.validate import Verdict
from auscult.store import open_store
from pipelines.cli import main
from pipelines.console import Console
from pipelines.loop import LoopConfig, run_loop, summary_lines
from pipelines.workspace import Workspace

# Retraining on a source no production model was trained on (its own telemetry) waits for a person.
STRICT_PLAN = """apiVersion: auscult.io/v1
kind: ChangeControlPlan
metadata: {name: strict, version: 1}
spec: {automatic: [first-model, retraining], knownSources: []}
"""


@pytest.mark.slow
def test_the_lifecycle_loop_closes(tmp_path, monkeypatch, capsys, browser):
    # A fixed key fixes the participant split; 48 participants and 10 epochs learn the synthetic difference
    # reliably (AUROC 1.0 under four different keys), 36 and 6 did not.
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "e2e-test-key")
    # A small cohort: validation and test hold a few participants of each class, not the default ten. With seven
    # test participants no margin over recording properties can show at the interval's lower bound, so that rule
    # is waived here; tests/auscult/stages/test_shortcut_gate.py judges it on cohorts large enough to.
    config = LoopConfig(
        workdir=tmp_path / "run",
        participants=48,
        traffic_participants=12,
        epochs=10,
        min_auroc=0.6,
        effect=1.0,
        min_participants_per_class=3,
        min_margin_over_metadata=-1.0,
        # Nor can the comparison with production: one test participant ranked otherwise moves the paired
        # interval by more than 0.02, and floating point differs from one CPU to another (CI once fell below it).
        max_regression=1.0,
        # Seed 1: both runs' models pass this small gate (seed 0's retraining run meets an age band that predicts
        # the label by chance among so few participants, and is rightly not blessed).
        seed=1,
        # Curate and prep fan out over two shards per run, as on a cluster (one task each, here one after another).
        shards=2,
        change_plan=tmp_path / "strict.yaml",
    )
    config.change_plan.write_text(STRICT_PLAN)
    terminal = io.StringIO()
    with Console(tmp_path / "run.log", terminal=terminal) as console:
        result = run_loop(config, console)

    assert len(result.runs) == 2, "the shifted traffic should have triggered a retraining run"
    first, second = result.runs
    assert set(first.tasks) == {
        "monitor",
        "ingest",
        "plan-shards",
        "curate",
        "label",
        "prep",
        "train",
        "validate",
        "deploy",
        "run-report",
    }
    assert first.tasks["curate"].metrics["quarantined"] > 0
    assert len(first.shard_tasks("measure")) == len(first.shard_tasks("prep-shard")) == 2
    assert first.tasks["prep"].metrics["shards"] == 2
    assert result.traffic.sent == 48 and result.traffic.rejected == 0
    assert result.traffic.feedback > 0
    assert result.monitoring.parameter("monitor", "retrain") is True

    # The second run ingested what production heard.
    assert second.tasks["ingest"].metrics["recordings"] == first.tasks["ingest"].metrics["recordings"] + 48
    store = open_store(Workspace(config.workdir).store_uri)
    assert len(store.list(layout.TELEMETRY_RECORDS)) == 48
    assert not store.list(layout.WORK), "each run's exit task released its working data (the windows)"
    registry = Registry(store)
    assert registry.production()["version"] == result.production
    assert len(registry.versions()) >= 1
    card = registry.card(result.production)
    assert card["metrics"]["auroc"] >= 0.6 and len(card["data"]["table_sha256"]) == 64
    assert card["lineage"]["run"] == first.folder.name

    # The retraining run's model is registered, awaiting approval; production did not move.
    assert second.tasks["deploy"].metrics["awaiting_approval"] == 1
    waiting = second.parameter("deploy", "Output")
    assert result.production == first.parameter("deploy", "Output") != waiting
    summary = "\n".join(summary_lines(result))
    assert "AUROC" in summary and "decision: RETRAIN" in summary
    assert "WARNING: " in summary and "training recordings are synthetic" in summary
    assert "inputs: " in summary and "no earlier run here read these sources" in summary
    assert f"{waiting} AWAITS APPROVAL" in summary
    assert "quarantined: " in summary
    html = result.report_path.read_text()
    assert "data:image/png;base64" in html and "WARNING" in html, (
        "it says the production model learnt from synthetic data"
    )
    # The reports open in a browser with every plot and every link: the loop's page, and the KFP run report.
    shown = browser.open(result.report_path, tmp_path / "report.png")
    assert shown.images >= 6 and not shown.broken_images and not shown.broken_links, shown
    assert len([link for link in shown.links if link.endswith(".html")]) >= 10, "each stage report is a page"
    # KFP's artifact file has no extension (the KFP UI renders it as HTML all the same); a browser needs one.
    kfp_page = tmp_path / "run-report.html"
    kfp_page.write_bytes(Path(first.artifact("run-report", "page")).read_bytes())
    shown = browser.open(kfp_page, tmp_path / "run-report.png")
    assert shown.title.endswith(": SUCCEEDED") and shown.images >= 3 and not shown.broken_images, shown
    said = kfp_page.read_text()
    assert "The model was BLESSED." in said and "promote" in said and "Time per stage" in said
    assert Verdict.load(first.artifact("validate", "onnx_model")).blessed, "the first run's model was served"

    # The terminal got a line per stage and no KFP output; the log file got all of it.
    shown = terminal.getvalue()
    assert all(f"  {stage} " in shown for stage in ("ingest", "curate", "prep", "train", "validate"))
    assert "executor_input" not in shown and "Executing task" not in shown
    assert len(shown.splitlines()) < 80
    assert "Executing task" in (tmp_path / "run.log").read_text()

    workdir = ["--workdir", str(config.workdir)]
    capsys.readouterr()

    # A served request leads to the model that answered it, the run that trained it, and that run's raw recordings.
    request_id = store.get_json(store.list(layout.TELEMETRY_RECORDS)[0])["request_id"]
    assert main(["lineage", "--request-id", request_id, "--json", *workdir]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["request"]["model_version"] == result.production and chain["run"]["run"] == first.folder.name
    prepared = pd.read_parquet(first.artifact("prep", "prepared") + "/recordings.parquet")
    trained_on = prepared[prepared["split"] == "train"]
    assert {r["recording_id"] for r in chain["recordings"]} == set(trained_on["recording_id"])
    cohort = config.workdir / "data" / "cohort"
    assert all(r["original_path"].startswith(str(cohort)) and r["source"] == "cohort" for r in chain["recordings"])
    assert main(["lineage", "--request-id", request_id, *workdir]) == 0
    assert f"trained by run {first.folder.name}" in capsys.readouterr().out
    # ... and a recording leads to every model trained on it, and its deployments.
    recording = trained_on["recording_id"].iloc[0]
    assert main(["lineage", "--recording", recording, "--json", *workdir]) == 0
    models = {m["version"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert models[result.production]["split"] == "train" and models[result.production]["production"]
    assert waiting in models, "the retraining run used the same recordings"

    # A person approves; production moves; the audit trail has both acts, with actor and reason.
    assert main(["approve", waiting, "--reason", "telemetry reviewed", "--by", "Dr Test", *workdir]) == 0
    assert registry.production()["version"] == waiting
    assert main(["audit", *workdir]) == 0
    trail = capsys.readouterr().out
    assert "await-approval" in trail and "approve" in trail and "Dr Test" in trail and "telemetry reviewed" in trail

    # A participant the models were trained on is erased: nothing of them is left in the store or pipeline root.
    with open(cohort / synth.METADATA_FILE, newline="") as handle:
        people = [row["id"] for row in csv.DictReader(handle)]
    key = b"e2e-test-key"
    person = next(p for p in people if participant_id("cohort", p, key) == trained_on["participant_id"].iloc[0])
    pseudonym = participant_id("cohort", person, key)
    needles = set(prepared.loc[prepared["participant_id"] == pseudonym, "recording_id"]) | {pseudonym}
    erase = ["erase", "--source", "cohort", "--participant", person, "--reason", "consent withdrawn", *workdir]
    assert main(erase) == 0
    erased = capsys.readouterr().out
    assert "trained, tuned or tested on the erased data" in erased and "0 removed in the pipeline root" in erased
    for key_name in store.list():
        data = store.get(key_name)
        said = key_name + (pd.read_parquet(io.BytesIO(data)).to_csv() if data[:4] == b"PAR1" else str(data))
        assert not any(n in said for n in needles), f"{key_name} still names the erased participant"
    for path in (p for p in Workspace(config.workdir).pipeline_root.rglob("*") if p.is_file()):
        if path.read_bytes()[:4] == b"PAR1":  # KFP's artifact files have no suffix
            said = pd.read_parquet(path).to_csv()
        else:
            said = "" if path.suffix in (".npy", ".onnx", ".pt", ".png") else path.read_text(errors="replace")
        assert not any(n in str(path) + said for n in needles), f"{path} still names the erased participant"
    assert registry.erasures(result.production) and registry.erasures(waiting)
    # Everyone else's rows are still in the run's tables.
    left = pd.read_parquet(first.artifact("prep", "prepared") + "/recordings.parquet")
    assert len(left) == len(prepared) - len(needles - {pseudonym}) and pseudonym not in set(left["participant_id"])
