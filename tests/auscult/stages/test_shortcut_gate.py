"""The shortcut gate on cohorts with a planted shortcut, and on real recordings whose label is the channel.

Each cohort runs the stages themselves (ingest to validate) as the pipeline does; the default cohort's verdict
is the end-to-end loop test's.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from auscult import synth
from auscult.stages.curate import curate
from auscult.stages.ingest import ingest
from auscult.stages.label import label
from auscult.stages.prep import prep
from auscult.stages.split import split
from auscult.stages.train import TrainConfig, train
from auscult.stages.validate import ValidateConfig, validate
from auscult.store import FileStore

pytestmark = pytest.mark.slow
COVID19_COUGH = Path(__file__).resolve().parents[4] / "shared" / "data" / "covid19-cough"
CHANNEL_PROPERTIES = ("device", "format", "sample rate", "bandwidth", "file size")


def judged(source: Path, folder: Path, epochs: int, seed: int = 0):
    store, quiet = FileStore(folder / "store"), lambda _: None
    frame, _ = ingest([str(source)], store, b"key", progress=quiet)
    curated, _ = curate(frame, store, progress=quiet)
    prepared = prep(split(label(curated)), folder / "prep", progress=quiet)
    trained = train(prepared, TrainConfig(epochs=epochs, seed=seed), progress=quiet)
    return validate(trained, prepared, folder / "validate", None, ValidateConfig(bootstrap=500))


def planted(folder: Path, seed: int, effect: float, participants: int) -> Path:
    spec = synth.CohortSpec(participants=participants, seed=seed, effect=effect, positive_fraction=0.5, confound=0.4)
    synth.generate(folder / "cohort", spec)
    return folder / "cohort"


def place_file(source: Path, target: Path) -> None:
    """``source``'s bytes at ``target``: a hard link where both are on one file system, a copy otherwise."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def failures(result) -> list[str]:
    return [reason for reason in result.reasons if reason.startswith("FAIL")]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_model_that_learnt_the_channel_is_not_blessed_and_the_reason_names_it(tmp_path, seed):
    result = judged(planted(tmp_path, seed, effect=0.0, participants=240), tmp_path, epochs=4, seed=seed)
    assert not result.blessed
    within = [r for r in failures(result) if "within" in r]
    assert within and any(p in within[0] for p in CHANNEL_PROPERTIES), failures(result)
    assert result.metrics["margin_over_metadata_ci_low"] < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_channel_with_a_real_sound_difference_is_blessed(tmp_path, seed):
    # The cohort above but for a sound difference clear enough to be learnt in the same 4 epochs (0.3 takes 10).
    # The margin over recording properties decides the verdict, its lower bound set by the metadata model's
    # interval: 0.10-0.20 against the 0.05 required at seeds 0-2, every stratified AUROC's bound above 0.95.
    result = judged(planted(tmp_path, seed, effect=0.5, participants=240), tmp_path, epochs=4, seed=seed)
    assert result.blessed, failures(result)
    assert result.audit["flagged"].any()  # the channel still predicts the label: the gate looked within it
    assert all(result.within["auroc_ci_low"] >= 0.8)


@pytest.mark.skipif(not COVID19_COUGH.is_dir(), reason=f"real recordings not found at {COVID19_COUGH}")
def test_covid19_cough_labelled_by_its_channel_is_not_blessed(tmp_path):
    """Every covid-negative recording, labelled "positive" when it came through the call centre: the label is
    nothing but the phone line."""
    # A manifest reads only files inside its own folder: link (or copy) the recordings in.
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    manifest = tmp_path / "channel.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for entry in json.loads((COVID19_COUGH / "metadata.json").read_text()):
            if not entry["covid19"]:
                channel = "positive" if entry["source"] == "call-center" else "negative"
                place_file(COVID19_COUGH / "raw" / entry["filename"], recordings / entry["filename"])
                writer.writerow([f"recordings/{entry['filename']}", channel])
    result = judged(manifest, tmp_path, epochs=3)
    assert not result.blessed
    named = [r for r in failures(result) if any(p in r for p in CHANNEL_PROPERTIES)]
    assert named, failures(result)
