"""Shared fixtures: a small synthetic cohort, and the stages run over it once per session."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from auscult import synth
from auscult.store import FileStore

KEY = b"test-pseudonym-key"
SMALL = synth.CohortSpec(participants=24, seed=3, effect=1.0, defect_rate=0.1, unusable_label_rate=0.1)


@pytest.fixture(autouse=True, scope="session")
def _quiet_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True, scope="session")
def _serving_keys() -> None:
    """The keys a model server reads from its environment (Secrets on a cluster, key files in a workspace)."""
    from auscult.pseudonym import PSEUDONYM_KEY_ENV
    from auscult.serving.contract import ENV_FEEDBACK_KEY

    os.environ.setdefault(PSEUDONYM_KEY_ENV, KEY.decode())
    os.environ.setdefault(ENV_FEEDBACK_KEY, "test-feedback-key")


@pytest.fixture(scope="module")
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1, its endpoint and credentials in the environment."""
    from moto.server import ThreadedMotoServer

    from auscult.store import SECRET_KEYS

    names = [SECRET_KEYS[k] for k in ("endpoint", "access-key", "secret-key")]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(dict(zip(names, (f"{host}:{port}", "test", "test"), strict=True)))
    yield f"{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(params=["file", "s3"])
def any_store(request, tmp_path: Path):
    """The same test on a folder store and on S3 (moto on 127.0.0.1), each empty."""
    if request.param == "file":
        return FileStore(tmp_path / "store")
    request.getfixturevalue("s3_server")
    from auscult.store import open_store

    return open_store(f"s3://auscult-test-{uuid.uuid4().hex[:12]}/{tmp_path.name}")


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
    from auscult.stages.split import split

    return prep(split(labelled), tmp_path_factory.mktemp("prepared"), progress=lambda _: None)


@pytest.fixture(scope="session")
def trained(prepared):
    from auscult.stages.train import TrainConfig, train

    return train(prepared, TrainConfig(epochs=4), progress=lambda _: None)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium, installed by scripts/browser.sh where missing."""
    from tests.browser import Browser

    opened = Browser()
    yield opened
    opened.close()
