"""A governed workspace made by hand: the stages as the components call them, with what the components write to
the lineage record, one model registered from it, and one request served."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from auscult import layout, working
from auscult import table as recording_table
from auscult.lineage import Lineage, RunRef
from auscult.pseudonym import telemetry_participant
from auscult.registry import Registry
from auscult.serving.telemetry import TelemetryWriter
from auscult.stages.curate import curate, quarantine_decisions
from auscult.stages.deploy import deploy, model_card
from auscult.stages.ingest import ingest
from auscult.stages.label import label, review_queue
from auscult.stages.prep import prep, window_file_name
from auscult.stages.split import split, split_members
from auscult.stages.validate import Verdict
from tests.conftest import KEY

RUN = RunRef("4242", "auscult-training-governed")
TELEMETRY_TAG = "app-user-7"


def run_pipeline_by_hand(cohort: Path, store, root: Path) -> tuple[str, pd.DataFrame]:
    """The stages as the components call them, writing what the components write (lineage included)."""
    lineage = Lineage(store)
    frame, _ = ingest([str(cohort)], store, KEY, progress=lambda _: None)
    (root / "ingest").mkdir(parents=True)
    recording_table.write(frame, root / "ingest" / "table", "ingest")  # KFP's artifact files have no suffix
    lineage.note_origins(frame.to_dict("records"))
    lineage.record_members(RUN, "ingest", {"recordings": sorted(frame["recording_id"])})
    curated, _ = curate(frame, store, progress=lambda _: None)
    lineage.record_members(RUN, "curate", {"quarantined": quarantine_decisions(curated)})
    labelled = split(label(curated))
    (root / "label").mkdir()
    recording_table.write(labelled, root / "label" / "labelled", "split")
    recording_table.write_csv(review_queue(labelled), root / "label" / "review_queue")
    prepared = prep(labelled, root / "prep" / "prepared", progress=lambda _: None, count=2)
    # As the pipeline's prep shards do: a shard's windows in the run's working data.
    first = root / "prep" / "prepared" / window_file_name(0, 2)
    working.publish(store, RUN.run_id, layout.run_windows(RUN.run_id, 0, 2), first)
    lineage.record_members(RUN, "prep", split_members(prepared.table))
    seen = sorted(prepared.table.loc[prepared.table["split"].isin(["train", "validation"]), "recording_id"])
    verdict = Verdict(True, ["pass: test"], {"auroc": 0.9}, {"recordings": seen, "input": {}, "prediction": []})
    registry = Registry(store)
    result = deploy(registry, b"onnx bytes", model_card(verdict, b"table", RUN), verdict.reference)
    return result.version, prepared.table


def serve_one_request(store, tmp_path: Path) -> None:
    writer = TelemetryWriter(store, tmp_path / "spool")
    wave = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    tags = {"participant": telemetry_participant(TELEMETRY_TAG, KEY), "sound_type": "cough"}
    writer.record("request-1", "v0001", wave, [0.4, 0.6], {"rms_db": -20.0}, tags)
    writer.feedback("request-1", "positive")
    writer.close()


def copy_of(template, store, root: Path) -> tuple[str, pd.DataFrame]:
    """The template's store objects in ``store`` and its pipeline root at ``root``."""
    source, source_root, version, prepared = template
    for key in source.list():
        store.put(key, source.get(key))
    shutil.copytree(source_root, root)
    return version, prepared
