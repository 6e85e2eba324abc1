"""Shared fixtures: a small synthetic cohort, and the stages run over it once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auscult import synth
from auscult.store import FileStore

KEY = b"test-pseudonym-key"
SMALL = synth.CohortSpec(participants=24, seed=3, effect=1.0, defect_rate=0.1, unusable_label_rate=0.1)


@pytest.fixture(autouse=True, scope="session")
def _quiet_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    synth.generate(folder, SMALL)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture(scope="session")
def labelled(cohort: Path, tmp_path_factory: pytest.TempPathFactory):
    from auscult.stages.curate import curate
    from auscult.stages.ingest import ingest
    from auscult.stages.label import label

    store = FileStore(tmp_path_factory.mktemp("session-store"))
    frame, _ = ingest([str(cohort)], store, KEY, progress=lambda _: None)
    curated, _ = curate(frame, store, progress=lambda _: None)
    return label(curated)


@pytest.fixture(scope="session")
def prepared(labelled, tmp_path_factory):
    from auscult.stages.prep import prep

    return prep(labelled, tmp_path_factory.mktemp("prepared"), progress=lambda _: None)


@pytest.fixture(scope="session")
def trained(prepared):
    from auscult.stages.train import TrainConfig, train

    return train(prepared, TrainConfig(epochs=4), progress=lambda _: None)
