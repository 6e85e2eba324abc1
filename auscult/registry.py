"""The model registry, in the object store.

``models/<name>/versions/<version>/`` holds ``model.onnx``, ``model_card.json`` and ``reference.json``
(the training reference that monitoring compares with). Versions are numbered and carry the hash of their
ONNX bytes; registering the same bytes twice returns the existing version. The production pointer is an
append-only series ``models/<name>/production/<seq>.json``: the newest entry is in force, the ones before
it are the rollback history. Nothing is overwritten.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from auscult.store import ObjectStore

MODEL_NAME = "auscult-screening"


class Registry:
    def __init__(self, store: ObjectStore, name: str = MODEL_NAME):
        self.store = store
        self.name = name
        self.prefix = f"models/{name}"

    def versions(self) -> list[str]:
        keys = self.store.list(f"{self.prefix}/versions/")
        return sorted({k.split("/")[3] for k in keys if k.endswith("/model.onnx")})

    def register(self, onnx: bytes, card: dict, reference: dict) -> str:
        digest = hashlib.sha256(onnx).hexdigest()
        for version in self.versions():
            if version.endswith(digest[:12]):
                return version
        version = f"v{len(self.versions()) + 1:04d}-{digest[:12]}"
        base = f"{self.prefix}/versions/{version}"
        # Card and reference first: a version is visible only once its model.onnx exists.
        self.store.put_json(f"{base}/model_card.json", {**card, "version": version, "onnx_sha256": digest})
        self.store.put_json(f"{base}/reference.json", reference)
        self.store.put(f"{base}/model.onnx", onnx)
        return version

    def _pointers(self) -> list[str]:
        return self.store.list(f"{self.prefix}/production/")

    def production(self) -> dict | None:
        """The pointer in force ({version, previous, updated_at, reason}), or None before any deploy."""
        pointers = self._pointers()
        return self.store.get_json(pointers[-1]) if pointers else None

    def promote(self, version: str, reason: str) -> dict:
        if version not in self.versions():
            raise KeyError(f"no registered version {version!r}")
        current = self.production()
        pointer = {
            "version": version,
            "previous": current["version"] if current else None,
            "updated_at": datetime.now(UTC).isoformat(),
            "reason": reason,
        }
        self.store.put_json(f"{self.prefix}/production/{len(self._pointers()) + 1:06d}.json", pointer)
        return pointer

    def rollback(self, reason: str = "rollback") -> dict:
        current = self.production()
        if not current or not current["previous"]:
            raise LookupError("there is no previous production version to roll back to")
        return self.promote(current["previous"], reason)

    def onnx(self, version: str) -> bytes:
        return self.store.get(f"{self.prefix}/versions/{version}/model.onnx")

    def card(self, version: str) -> dict:
        return self.store.get_json(f"{self.prefix}/versions/{version}/model_card.json")

    def reference(self, version: str) -> dict:
        return self.store.get_json(f"{self.prefix}/versions/{version}/reference.json")
