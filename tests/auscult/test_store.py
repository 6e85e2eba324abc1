"""The object store, on a folder and on a real S3-compatible server (moto) on 127.0.0.1."""

import os

import pytest
import urllib3

from auscult.errors import InputError
from auscult.store import SECRET_KEYS, FileStore, S3Store, open_store, read_uri, s3_client_from_env

ENDPOINT, ACCESS, SECRET = (SECRET_KEYS[k] for k in ("endpoint", "access-key", "secret-key"))


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


def test_delete_removes_only_that_object(any_store):
    any_store.put("a/one", b"1")
    any_store.put("a/one-more", b"2")
    any_store.delete("a/one")
    any_store.delete("a/never-there")
    assert any_store.list("a/") == ["a/one-more"]


def test_listing_from_a_watermark_and_with_sizes_and_versions(any_store):
    for key in ("t/2026/01/01/a.json", "t/2026/01/02/b.json", "t/2026/02/01/c.json", "t/20260/x.json", "u/d.json"):
        any_store.put(key, key.encode())
    assert any_store.list("t/", start_after="t/2026/01/02") == [
        "t/2026/01/02/b.json",
        "t/2026/02/01/c.json",
        "t/20260/x.json",
    ]
    assert any_store.list("t/2026/", start_after="t/2026/01/02/b.json") == ["t/2026/02/01/c.json"]
    assert any_store.list(start_after="t/2026/02") == ["t/2026/02/01/c.json", "t/20260/x.json", "u/d.json"]
    (found,) = any_store.listing("u/")
    assert (found.key, found.size) == ("u/d.json", len(b"u/d.json"))
    any_store.put("u/d.json", b"other bytes")
    (changed,) = any_store.listing("u/")
    assert changed.size == len(b"other bytes") and changed.version != found.version
    (same,) = any_store.listing("u/")
    assert same == changed, "a version changes with the object, not with the listing"


def test_a_folder_store_does_not_walk_folders_before_the_watermark(tmp_path, monkeypatch):
    store = FileStore(tmp_path / "store")
    for day in range(1, 29):
        store.put(f"t/2026/02/{day:02d}/r.json", b"{}")
    scanned = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: scanned.append(str(path)) or scandir(path))
    assert store.list("t/", start_after="t/2026/02/27") == ["t/2026/02/27/r.json", "t/2026/02/28/r.json"]
    assert not [path for path in scanned if path.endswith(("/01", "/26"))]


def test_delete_on_a_versioned_bucket_leaves_no_version_behind(s3_server):
    from minio.versioningconfig import ENABLED, VersioningConfig

    store = open_store(f"s3://auscult-versioned-{os.getpid()}")
    store.client.set_bucket_versioning(store.bucket, VersioningConfig(ENABLED))
    store.put("erased.json", b"first")
    store.put("erased.json", b"second")
    store.put("kept.json", b"kept")
    store.delete("erased.json")
    left = [o.object_name for o in store.client.list_objects(store.bucket, include_version=True)]
    assert left == ["kept.json"]


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


class Flaky:
    """The real client, whose first ``failures`` calls of each listed method fail as a dropped connection does."""

    def __init__(self, client, failures: int, methods: tuple[str, ...]):
        self.client, self.failures, self.methods = client, failures, methods
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name not in self.methods:
            return real

        def call(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] <= self.failures:
                raise urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
            return real(*args, **kwargs)

        return call


def test_transient_failures_are_retried_with_backoff(s3_server):
    client = Flaky(s3_client_from_env(), failures=2, methods=("put_object", "get_object", "list_objects"))
    store = S3Store(f"auscult-flaky-{os.getpid()}", client=client, backoff_s=0.01)
    store.put("a.bin", b"payload")
    assert store.get("a.bin") == b"payload" and store.list() == ["a.bin"]
    assert client.calls == {"put_object": 3, "get_object": 3, "list_objects": 3}


def test_a_store_that_stays_down_fails_after_the_last_attempt(s3_server):
    client = Flaky(s3_client_from_env(), failures=100, methods=("put_object",))
    store = S3Store(f"auscult-down-{os.getpid()}", client=client, attempts=3, backoff_s=0.01)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        store.put("a.bin", b"x")
    assert client.calls["put_object"] == 3


def test_what_cannot_succeed_is_not_retried(s3_server):
    client = Flaky(s3_client_from_env(), failures=0, methods=("get_object",))
    store = S3Store(f"auscult-missing-{os.getpid()}", client=client, backoff_s=10)
    with pytest.raises(KeyError):
        store.get("no/such/key")
    assert client.calls["get_object"] == 1


def test_an_s3_store_without_an_endpoint_says_what_to_set(monkeypatch):
    monkeypatch.delenv(ENDPOINT, raising=False)
    with pytest.raises(InputError, match=ENDPOINT):
        open_store("s3://bucket/prefix")


def test_a_folder_whose_name_needs_quoting_in_a_uri(tmp_path):
    store = FileStore(tmp_path / "my store #1")
    uri = store.put("a.bin", b"x")
    assert "%20" in uri and read_uri(uri) == b"x"
    assert open_store(store.root).get("a.bin") == b"x"
