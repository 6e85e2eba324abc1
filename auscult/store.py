"""The object store: long-lived state (data lake, quarantine, model registry, telemetry) addressed by URI.

One interface, two backends:

* ``file:///abs/path`` - a folder, the embedded default on one machine;
* ``s3://bucket/prefix`` - any S3-compatible server (MinIO on a cluster) through the ``minio`` client.
  The endpoint and credentials come from the environment (a Kubernetes Secret on a cluster), never from
  pipeline parameters: :data:`SECRET_KEYS` names the variables (endpoint as host:port, the two keys, and
  "true" for TLS).

Writes are whole-object and atomic; callers pick content-addressed or versioned keys (all of them built in
:mod:`auscult.layout`), so nothing is overwritten in place, and nothing is deleted but by erasure. Transient
S3 failures (a dropped connection, a 5xx, "slow down") are retried here with exponential backoff, so a pipeline
task never needs a retry of its own; what cannot succeed on a retry (no such key, access denied) is raised at
once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from auscult.errors import InputError

# How a Kubernetes Secret holding object-store credentials maps onto the environment read below.
SECRET_KEYS = {
    "endpoint": "AUSCULT_S3_ENDPOINT",
    "access-key": "AWS_ACCESS_KEY_ID",
    "secret-key": "AWS_SECRET_ACCESS_KEY",
    "secure": "AUSCULT_S3_SECURE",
}
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_ENV = "AUSCULT_S3_READ_TIMEOUT_S"  # how long an S3 answer may take; 60 s unless set
# S3 error codes that a later attempt may not meet.
TRANSIENT_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "OperationAborted"})

log = logging.getLogger(__name__)
Result = TypeVar("Result")


@dataclass(frozen=True)
class Listed:
    """One object as a listing names it: its key, its size, and a ``version`` that changes whenever its bytes may
    have (S3's ETag; a file's modification time, change time and inode, since every put renames a new file in)."""

    key: str
    size: int
    version: str


def json_bytes(value: Any) -> bytes:
    """How every JSON object in the store is written."""
    return json.dumps(value, indent=1, sort_keys=True).encode()


class ObjectStore(ABC):
    """A flat key space under one root URI."""

    root: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key``; return the object's URI."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> str:
        """Write the file at ``path`` to ``key`` without reading it into memory; return the object's URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read the object at ``key``; raise ``KeyError`` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "", start_after: str = "") -> list[str]:
        """Keys under ``prefix``, sorted; with ``start_after``, only the keys after it (a watermark: keys that sort
        in time order, as telemetry's date-partitioned ones do, are listed from a day on without the days before)."""
        return [found.key for found in self.listing(prefix, start_after)]

    @abstractmethod
    def listing(self, prefix: str = "", start_after: str = "") -> list[Listed]:
        """What :meth:`list` names, with each object's size and version: what ingest compares with its index to
        tell an object it has read before without reading it again."""

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def put_json(self, key: str, value: Any) -> str:
        return self.put(key, json_bytes(value))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at ``key`` if there is one. Only erasure (:mod:`auscult.erasure`) and the end of a run's
        working data (:mod:`auscult.working`) delete."""

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

    def put_file(self, key: str, path: Path) -> str:
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".tmp-{os.getpid()}-{threading.get_native_id()}-{target.name}")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def delete(self, key: str) -> None:
        self._file(key).unlink(missing_ok=True)

    def listing(self, prefix: str = "", start_after: str = "") -> list[Listed]:
        base = self.path / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        found: list[Listed] = []
        self._walk(start, prefix, start_after, found)
        return sorted(found, key=lambda listed: listed.key)

    def _walk(self, folder: Path, prefix: str, start_after: str, found: list[Listed]) -> None:
        """Every file below ``folder`` whose key is under ``prefix`` and after ``start_after``. A folder whose keys all
        sort before ``start_after`` is not entered: listing from a watermark costs what lies after it. Links to
        files are followed, links to folders are not (as ``Path.rglob`` does)."""
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):  # removed while listed
            return
        for entry in entries:
            key = Path(entry.path).relative_to(self.path).as_posix()
            if entry.is_dir(follow_symlinks=False):
                inner = f"{key}/"
                # Every key below sorts before start_after when the folder's own prefix does and is not a prefix of it.
                passed = inner < start_after and not start_after.startswith(inner)
                if not passed and (inner.startswith(prefix) or prefix.startswith(inner)):
                    self._walk(Path(entry.path), prefix, start_after, found)
                continue
            if not key.startswith(prefix) or key <= start_after or entry.name.startswith(".tmp-"):
                continue
            try:
                info = entry.stat()
            except FileNotFoundError:  # removed while listed, or a link to nothing
                continue
            if stat.S_ISREG(info.st_mode):
                found.append(Listed(key, info.st_size, f"{info.st_mtime_ns}-{info.st_ctime_ns}-{info.st_ino}"))


def is_transient(error: BaseException) -> bool:
    """Whether the same S3 call may succeed later: a network failure, a 5xx, or an S3 "try again" code."""
    import urllib3
    from minio.error import S3Error, ServerError

    if isinstance(error, S3Error):
        return error.code in TRANSIENT_CODES
    return isinstance(error, ServerError | urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None, attempts: int = 5, backoff_s: float = 0.5):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or s3_client_from_env()
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.attempts, self.backoff_s = attempts, backoff_s
        if not self._retrying(self.client.bucket_exists, bucket):
            self._retrying(self.client.make_bucket, bucket)

    def _retrying(self, call: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        for attempt in range(1, self.attempts + 1):
            try:
                return call(*args, **kwargs)
            except Exception as error:
                if attempt == self.attempts or not is_transient(error):
                    raise
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "%s: %s failed (%s); attempt %d of %d in %.1f s",
                    self.root,
                    call.__name__,
                    error,
                    attempt + 1,
                    self.attempts,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> str:
        def put_object() -> None:
            self.client.put_object(self.bucket, self._key(key), io.BytesIO(data), len(data))

        self._retrying(put_object)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        # The client sends a large file in parts, never whole in memory.
        self._retrying(self.client.fput_object, self.bucket, self._key(key), str(path))
        return self.uri(key)

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        def get_object() -> bytes:
            response = self.client.get_object(self.bucket, self._key(key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return self._retrying(get_object)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                raise KeyError(key) from None
            raise

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self._retrying(self.client.stat_object, self.bucket, self._key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        # On a versioned bucket a plain delete only hides the object behind a marker: every version goes, so that
        # an erased object is gone.
        def remove_every_version() -> None:
            name = self._key(key)
            for found in self.client.list_objects(self.bucket, prefix=name, include_version=True):
                if found.object_name == name:
                    version = None if found.version_id in (None, "null") else found.version_id
                    self.client.remove_object(self.bucket, name, version_id=version)

        self._retrying(remove_every_version)

    def listing(self, prefix: str = "", start_after: str = "") -> list[Listed]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        after = self._key(start_after) if start_after else None

        def list_objects() -> list[Listed]:
            objects = self.client.list_objects(self.bucket, prefix=self._key(prefix), recursive=True, start_after=after)
            return [Listed(obj.object_name[strip:], int(obj.size or 0), str(obj.etag)) for obj in objects]

        return sorted(self._retrying(list_objects), key=lambda listed: listed.key)


def secret_env(secret: str) -> list[dict]:
    """The store's credentials as a container's environment, each read from ``secret`` (Kubernetes EnvVars)."""
    return [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key, env in sorted(SECRET_KEYS.items())
    ]


def s3_client_from_env() -> Any:
    from minio import Minio

    endpoint = os.environ.get(SECRET_KEYS["endpoint"])
    if not endpoint:
        raise InputError(
            f"an s3:// store needs {SECRET_KEYS['endpoint']} (host:port) and credentials "
            f"({SECRET_KEYS['access-key']}, {SECRET_KEYS['secret-key']}) in the environment"
        )
    import certifi
    import urllib3

    # minio's own client waits 5 minutes for a store that accepted a connection and went silent; a request
    # waiting on telemetry, or a pipeline task, should hear of it sooner. Failed calls are retried above.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=float(os.environ.get(READ_TIMEOUT_ENV, 60))),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        endpoint,
        access_key=os.environ.get(SECRET_KEYS["access-key"]),
        secret_key=os.environ.get(SECRET_KEYS["secret-key"]),
        secure=os.environ.get(SECRET_KEYS["secure"], "false").lower() == "true",
        http_client=http,
    )


def open_store(uri: str, attempts: int = 5) -> ObjectStore:
    """The store rooted at ``uri`` (``file:///path``, a plain path, or ``s3://bucket/prefix``); an S3 call is
    tried ``attempts`` times while it fails in a way that may pass."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(parsed.netloc, parsed.path, attempts=attempts)
    if parsed.scheme in ("file", ""):
        return FileStore(unquote(parsed.path) if parsed.scheme else uri)
    raise InputError(f"unsupported store URI {uri!r}: use file:///path or s3://bucket/prefix")


def read_uri(uri: str) -> bytes:
    """The bytes of one object named by its full URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).read_bytes()
    if parsed.scheme == "s3":
        return _bucket(parsed.netloc).get(parsed.path.lstrip("/"))
    raise ValueError(f"unsupported object URI {uri!r}")


def read_uri_range(uri: str, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset`` of the object named by its full URI (a ranged GET on S3)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        with open(unquote(parsed.path), "rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    if parsed.scheme == "s3":
        store = _bucket(parsed.netloc)

        def get_range() -> bytes:
            response = store.client.get_object(parsed.netloc, parsed.path.lstrip("/"), offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return store._retrying(get_range)
    raise ValueError(f"unsupported object URI {uri!r}")


@cache
def _bucket(name: str) -> S3Store:
    """One client per bucket for whole-URI reads: curate and prep read every recording of a run."""
    return S3Store(name)
