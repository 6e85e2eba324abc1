"""The object store, on a folder and on a real S3-compatible server (moto) on 127.0.0.1."""

import os

import pytest

from auscult.errors import InputError
from auscult.store import FileStore, S3Store, open_store, read_uri


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AUSCULT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AUSCULT_S3_ENDPOINT=f"{host}:{port}", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    yield f"{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(params=["file", "s3"])
def any_store(request, tmp_path):
    if request.param == "file":
        return FileStore(tmp_path / "store")
    request.getfixturevalue("s3_server")
    return open_store(f"s3://auscult-test-{os.getpid()}/{tmp_path.name}")


def test_put_get_exists_list(any_store):
    uri = any_store.put("a/b/one.bin", b"1")
    any_store.put("a/two.bin", b"22")
    any_store.put("c/three.bin", b"333")
    assert any_store.get("a/b/one.bin") == b"1"
    assert any_store.exists("a/two.bin") and not any_store.exists("a/none.bin")
    assert any_store.list("a/") == ["a/b/one.bin", "a/two.bin"]
    assert read_uri(uri) == b"1"


def test_missing_key_raises_key_error(any_store):
    with pytest.raises(KeyError):
        any_store.get("nothing/here")


def test_put_if_absent_does_not_rewrite(any_store):
    any_store.put_if_absent("k", b"first")
    any_store.put_if_absent("k", b"second")
    assert any_store.get("k") == b"first"


def test_json_round_trip(any_store):
    any_store.put_json("x.json", {"a": [1, 2]})
    assert any_store.get_json("x.json") == {"a": [1, 2]}


def test_large_object_goes_through_multipart(s3_server, tmp_path):
    store = open_store(f"s3://auscult-multipart-{os.getpid()}")
    assert isinstance(store, S3Store)
    data = os.urandom(12 * 1024 * 1024)
    store.put("big.bin", data)
    assert store.get("big.bin") == data


def test_file_store_refuses_keys_outside_its_root(tmp_path):
    store = FileStore(tmp_path / "store")
    with pytest.raises(ValueError, match="escapes"):
        store.put("../outside", b"x")


def test_unknown_scheme_is_rejected():
    with pytest.raises(InputError, match="unsupported"):
        open_store("gs://bucket")
