"""Telemetry durability with the real server on 127.0.0.1: an answered request keeps its record through a
SIGKILL of every server process and through a store outage, on a folder store and on S3 (moto)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid

from auscult import layout
from auscult.serving import contract, server
from auscult.serving.telemetry import read
from auscult.store import READ_TIMEOUT_ENV, SECRET_KEYS, FileStore, open_store
from tests.auscult.serving.conftest import TcpProxy, body, call, promote, wait_for, waveform_request

PREDICT = "/api/v1.0/predictions"


def answered(url: str, count: int, start: int = 0) -> tuple[list[str], list[int]]:
    """Send ``count`` requests; the request ids of those answered 200, and every other status seen."""
    ids, others = [], []
    for seed in range(start, start + count):
        status, _, text = call(url, "POST", PREDICT, body(waveform_request(seed)), timeout=60)
        if status == 200:
            ids.append(json.loads(text)["meta"]["tags"]["request_id"])
        else:
            assert status == 503, text  # refused for want of a record: never any other failure
            others.append(status)
    return ids, others


def recorded_ids(store) -> set[str]:
    return {record["request_id"] for record in read(store).records.values()}


def test_sigkill_after_answers_loses_no_record(any_store, onnx_model, tmp_path):
    store = any_store
    promote(store, onnx_model)
    spool = tmp_path / "spool"
    running = server.start(store.root, tmp_path / "server.log", workers=2, spool=spool)
    ids, refused = answered(running.url, 30)
    os.killpg(running.process.pid, signal.SIGKILL)  # the launcher and every worker, before they upload
    running.process.wait()
    assert len(ids) == 30 and not refused
    with server.start(store.root, tmp_path / "server.log", workers=1, spool=spool):
        assert wait_for(lambda: recorded_ids(store) >= set(ids), timeout_s=120), (
            f"{len(set(ids) - recorded_ids(store))} of {len(ids)} answered requests have no record"
        )


def _cut_folder_store(store: FileStore) -> None:
    """Make the store's telemetry folder unwritable in a way root cannot ignore: a file where the folder was."""
    folder = store.path / "telemetry"
    shutil.move(folder, store.path / "telemetry.away")
    folder.write_text("not a folder")


def _restore_folder_store(store: FileStore) -> None:
    (store.path / "telemetry").unlink()
    shutil.move(store.path / "telemetry.away", store.path / "telemetry")


def test_a_store_outage_mid_traffic_gives_no_200_without_a_record(any_store, onnx_model, tmp_path, monkeypatch):
    store = any_store
    promote(store, onnx_model)
    monkeypatch.setenv(contract.ENV_TELEMETRY_MAX_OUTAGE_S, "2")
    proxy = None
    if isinstance(store, FileStore):
        cut, restore = lambda: _cut_folder_store(store), lambda: _restore_folder_store(store)
    else:  # the server reaches S3 through a proxy that the test cuts
        host, port = os.environ[SECRET_KEYS["endpoint"]].split(":")
        proxy = TcpProxy(host, int(port))
        monkeypatch.setenv(SECRET_KEYS["endpoint"], f"127.0.0.1:{proxy.port}")
        cut, restore = proxy.cut, proxy.restore
    try:
        with server.start(store.root, tmp_path / "server.log", workers=2, spool=tmp_path / "spool") as running:
            before, _ = answered(running.url, 5)
            assert wait_for(lambda: recorded_ids(store) >= set(before))
            cut()
            during, _ = answered(running.url, 5, start=100)
            # The outage is spooled through; past the bound, requests are refused instead of answered unrecorded
            # (each worker finds out when its own upload fails, so some answers may still come before that).
            refused: list[int] = []
            seed, deadline = 200, time.monotonic() + 120
            while len(refused) < 3 and time.monotonic() < deadline:
                ids, statuses = answered(running.url, 1, start=seed)
                during, refused, seed = during + ids, refused + statuses, seed + 1
            assert len(refused) == 3, "the outage never got a request refused"
            health = [call(running.url, "GET", "/api/v1.0/health/status") for _ in range(4)]
            assert any(status == 503 and "refused writes" in text for status, _, text in health)
            restore()
            assert wait_for(lambda: answered(running.url, 1, start=500)[0], timeout_s=90)
            every = set(before + during)
            assert wait_for(lambda: recorded_ids(store) >= every, timeout_s=90), (
                f"{len(every - recorded_ids(store))} of {len(every)} answered requests have no record"
            )
    finally:
        if proxy:
            proxy.close()


def test_a_store_that_lost_its_bucket_is_an_error_the_operator_sees(s3_server, onnx_model, tmp_path, monkeypatch):
    from auscult.store import s3_client_from_env

    bucket = f"gone-{uuid.uuid4().hex[:8]}"
    store = open_store(f"s3://{bucket}")
    promote(store, onnx_model)
    monkeypatch.setenv(contract.ENV_TELEMETRY_MAX_OUTAGE_S, "1")
    with server.start(store.root, tmp_path / "server.log", workers=1, spool=tmp_path / "spool") as running:
        s3 = s3_client_from_env()
        for item in s3.list_objects(bucket, recursive=True):
            s3.remove_object(bucket, item.object_name)
        s3.remove_bucket(bucket)
        answered_ids, _ = answered(running.url, 3)
        assert wait_for(lambda: call(running.url, "GET", "/api/v1.0/health/status")[0] == 503, timeout_s=60)
        assert "NoSuchBucket" in call(running.url, "GET", "/api/v1.0/health/status")[2]
        assert "cannot write to the store" in running.log_path.read_text()
        s3.make_bucket(bucket)
        assert wait_for(lambda: recorded_ids(store) >= set(answered_ids), timeout_s=60)
    assert layout.TELEMETRY_RECORDS  # the records went where ingest reads them


def test_a_worker_killed_mid_service_is_replaced_and_its_records_uploaded(onnx_model, tmp_path):
    store = FileStore(tmp_path / "store")
    promote(store, onnx_model)
    with server.start(store.root, tmp_path / "server.log", workers=2, spool=tmp_path / "spool") as running:
        master = running.process.pid
        workers = _children(master)
        assert len(workers) >= 2  # the two workers (and seldon-core's metrics manager)
        ids, _ = answered(running.url, 10)
        os.kill(workers[-1], signal.SIGKILL)  # the last forked: a worker, not the metrics manager
        more, refused = answered(running.url, 10, start=50)
        assert len(more) == 10 and not refused
        assert wait_for(lambda: recorded_ids(store) >= set(ids + more), timeout_s=90)
        assert "died" in running.log_path.read_text()


def _children(pid: int) -> list[int]:
    return [int(child) for child in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def test_the_death_of_seldons_metrics_manager_is_healed(onnx_model, tmp_path):
    """Every request updates seldon-core's shared metrics through a manager process: without it, each would fail."""
    store = FileStore(tmp_path / "store")
    promote(store, onnx_model)
    with server.start(store.root, tmp_path / "server.log", workers=2, spool=tmp_path / "spool") as running:
        manager = _children(running.process.pid)[0]  # forked first, before the workers
        os.kill(manager, signal.SIGKILL)
        assert wait_for(lambda: answered(running.url, 1, start=700)[0], timeout_s=60)
        ids, refused = answered(running.url, 6, start=800)
        assert len(ids) == 6 and not refused
        assert "metrics manager process died" in running.log_path.read_text()


def test_a_store_that_takes_connections_and_never_answers_gets_requests_refused(
    s3_server, onnx_model, tmp_path, monkeypatch
):
    store = open_store(f"s3://silent-{uuid.uuid4().hex[:8]}/t")
    promote(store, onnx_model)
    host, port = os.environ[SECRET_KEYS["endpoint"]].split(":")
    proxy = TcpProxy(host, int(port))
    monkeypatch.setenv(SECRET_KEYS["endpoint"], f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv(contract.ENV_TELEMETRY_MAX_OUTAGE_S, "3")
    monkeypatch.setenv(READ_TIMEOUT_ENV, "8")  # the hung upload gives up sooner, and is tried again
    try:
        with server.start(store.root, tmp_path / "server.log", workers=1, spool=tmp_path / "spool") as running:
            proxy.silent = True
            proxy.cut()  # drop the connections the server holds: the next upload opens one that hangs
            proxy.up.set()
            ids, _ = answered(running.url, 2)
            assert wait_for(lambda: call(running.url, "GET", "/api/v1.0/health/status")[0] == 503, timeout_s=60)
            assert "has not answered an upload" in call(running.url, "GET", "/api/v1.0/health/status")[2]
            late, refused = answered(running.url, 2, start=50)
            assert not late and len(refused) == 2
            proxy.restore()
            assert wait_for(lambda: recorded_ids(store) >= set(ids), timeout_s=240)
    finally:
        proxy.close()
