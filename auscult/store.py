"""The object store: long-lived state (data lake, quarantine, model registry, telemetry) addressed by URI.

One interface, two backends:

* ``file:///abs/path`` - a folder, the embedded default on one machine;
* ``s3://bucket/prefix`` - any S3-compatible server (MinIO on a cluster) through the ``minio`` client.
  The endpoint and credentials come from the environment (a Kubernetes Secret on a cluster), never from
  pipeline parameters: ``AUSCULT_S3_ENDPOINT`` (host:port), ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` and ``AUSCULT_S3_SECURE`` ("true" for TLS).

Writes are whole-object and atomic; callers pick content-addressed or versioned keys, so nothing is
overwritten in place.
"""

from __future__ import annotations

import io
import json
import os
import threading
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# How a Kubernetes Secret holding object-store credentials maps onto the environment read below.
SECRET_KEYS = {
    "endpoint": "AUSCULT_S3_ENDPOINT",
    "access-key": "AWS_ACCESS_KEY_ID",
    "secret-key": "AWS_SECRET_ACCESS_KEY",
    "secure": "AUSCULT_S3_SECURE",
}


class ObjectStore(ABC):
    """A flat key space under one root URI."""

    root: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key``; return the object's URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read the object at ``key``; raise ``KeyError`` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def put_json(self, key: str, value: Any) -> str:
        return self.put(key, json.dumps(value, indent=1, sort_keys=True).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Content-addressed writes: the same key always holds the same bytes, so skip what is there."""
        return self.uri(key) if self.exists(key) else self.put(key, data)


class FileStore(ObjectStore):
    def __init__(self, root: str | Path):
        self.path = Path(root).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.root = self.path.as_uri()

    def _file(self, key: str) -> Path:
        # normpath, not resolve(): keys are checked as text, without a system call per path component; a symbolic
        # link inside the store is the operator's doing and is followed.
        target = Path(os.path.normpath(self.path / key))
        if self.path not in target.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return target

    def put(self, key: str, data: bytes) -> str:
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half an object. The temporary name is unique per thread.
        partial = target.with_name(f".tmp-{os.getpid()}-{threading.get_native_id()}-{target.name}")
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, target)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.path / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        keys = (p.relative_to(self.path).as_posix() for p in start.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith(".tmp-"))


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or s3_client_from_env()
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if not self.client.bucket_exists(bucket):
            self.client.make_bucket(bucket)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(self.bucket, self._key(key), io.BytesIO(data), len(data))
        return self.uri(key)

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, self._key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                raise KeyError(key) from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self._key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        objects = self.client.list_objects(self.bucket, prefix=self._key(prefix), recursive=True)
        return sorted(obj.object_name[strip:] for obj in objects)


def s3_client_from_env() -> Any:
    from minio import Minio

    endpoint = os.environ.get("AUSCULT_S3_ENDPOINT")
    if not endpoint:
        raise RuntimeError("an s3:// store needs AUSCULT_S3_ENDPOINT (host:port) and credentials in the environment")
    return Minio(
        endpoint,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=os.environ.get("AUSCULT_S3_SECURE", "false").lower() == "true",
    )


def open_store(uri: str) -> ObjectStore:
    """The store rooted at ``uri`` (``file:///path``, a plain path, or ``s3://bucket/prefix``)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme in ("file", ""):
        return FileStore(parsed.path if parsed.scheme else uri)
    raise ValueError(f"unsupported store URI {uri!r}: use file:///path or s3://bucket/prefix")


def read_uri(uri: str) -> bytes:
    """The bytes of one object named by its full URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path).read_bytes()
    if parsed.scheme == "s3":
        return _bucket(parsed.netloc).get(parsed.path.lstrip("/"))
    raise ValueError(f"unsupported object URI {uri!r}")


@cache
def _bucket(name: str) -> S3Store:
    """One client per bucket for whole-URI reads: curate and prep read every recording of a run."""
    return S3Store(name)
