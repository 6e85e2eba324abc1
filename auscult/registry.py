"""The model registry, in the object store.

A version holds the ONNX model, its model card and the training reference that monitoring compares with
(keys in :mod:`auscult.layout`). Versions are numbered and carry the hash of their
ONNX bytes; registering the same bytes twice returns the existing version. The production pointer is an
append-only series of numbered pointers: the newest entry is in force, the ones before
it are the rollback history. A version's status (awaiting approval, approved, rejected) is an append-only series
beside it, as are the flags erasure leaves on versions trained on erased data. Nothing is overwritten.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from auscult import layout
from auscult.serving.contract import MODEL_NAME
from auscult.store import ObjectStore, json_bytes

REGISTERED = "registered"
AWAITING_APPROVAL = "awaiting-approval"
APPROVED = "approved"
REJECTED = "rejected"


class Registry:
    def __init__(self, store: ObjectStore, name: str = MODEL_NAME):
        self.store = store
        self.name = name

    def versions(self) -> list[str]:
        prefix = layout.model_versions(self.name)
        keys = self.store.list(prefix)
        return sorted({k[len(prefix) :].split("/")[0] for k in keys if k.endswith(f"/{layout.ONNX_FILE}")})

    def _key(self, version: str, file: str) -> str:
        return layout.model_version(self.name, version, file)

    def find(self, onnx: bytes) -> str | None:
        """The version holding these ONNX bytes, if one does."""
        digest = hashlib.sha256(onnx).hexdigest()
        return next((v for v in self.versions() if v.endswith(digest[:12])), None)

    def register(self, onnx: bytes, card: dict, reference: dict) -> str:
        if existing := self.find(onnx):
            return existing
        digest = hashlib.sha256(onnx).hexdigest()
        version = f"v{len(self.versions()) + 1:04d}-{digest[:12]}"
        # Card and reference first: a version is visible only once its ONNX model exists.
        # When it was registered: no request can name it before, so monitoring reads telemetry from that day on.
        registered = {"version": version, "onnx_sha256": digest, "registered_at": datetime.now(UTC).isoformat()}
        self.store.put_json(self._key(version, layout.MODEL_CARD_FILE), {**card, **registered})
        self.store.put_json(self._key(version, layout.REFERENCE_FILE), reference)
        self.store.put(self._key(version, layout.ONNX_FILE), onnx)
        return version

    def _pointers(self) -> list[str]:
        return self.store.list(layout.production_pointers(self.name))

    def production(self) -> dict | None:
        """The pointer in force ({version, previous, updated_at, reason}), or None before any deploy."""
        pointers = self._pointers()
        return self.store.get_json(pointers[-1]) if pointers else None

    def served(self) -> list[str]:
        """Every version the production pointer has named, oldest first."""
        return [self.store.get_json(key)["version"] for key in self._pointers()]

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
        self.store.put_json(layout.production_pointer(self.name, len(self._pointers()) + 1), pointer)
        return pointer

    def rollback(self, reason: str = "rollback") -> dict:
        current = self.production()
        if not current or not current["previous"]:
            raise LookupError("there is no previous production version to roll back to")
        return self.promote(current["previous"], reason)

    def set_status(self, version: str, status: str, detail: dict) -> dict:
        if version not in self.versions():
            raise KeyError(f"no registered version {version!r}")
        keys = self.store.list(layout.version_status(self.name, version))
        entry = {"status": status, "at": datetime.now(UTC).isoformat(), **detail}
        self.store.put_json(layout.version_status(self.name, version, len(keys) + 1), entry)
        return entry

    def status(self, version: str) -> dict:
        """The newest status entry of ``version`` ({status, at, ...}); ``registered`` when it has none."""
        keys = self.store.list(layout.version_status(self.name, version))
        return self.store.get_json(keys[-1]) if keys else {"status": REGISTERED}

    def flag_erased(self, version: str, erasure_id: str, detail: dict) -> None:
        """Mark ``version`` as trained on data erasure ``erasure_id`` removed."""
        self.store.put_json(layout.version_erasure(self.name, version, erasure_id), detail)

    def erasures(self, version: str) -> list[dict]:
        return [self.store.get_json(k) for k in self.store.list(layout.version_erasure(self.name, version))]

    def record_serving(self, version: str, serving: dict) -> None:
        """How deploy rolled ``version`` out, or would have: what ``approve`` replays."""
        self.store.put_if_absent(self._key(version, layout.SERVING_SPEC_FILE), json_bytes(serving))

    def serving(self, version: str) -> dict | None:
        try:
            return self.store.get_json(self._key(version, layout.SERVING_SPEC_FILE))
        except KeyError:
            return None

    def onnx(self, version: str) -> bytes:
        return self.store.get(self._key(version, layout.ONNX_FILE))

    def card(self, version: str) -> dict:
        return self.store.get_json(self._key(version, layout.MODEL_CARD_FILE))

    def reference(self, version: str) -> dict:
        return self.store.get_json(self._key(version, layout.REFERENCE_FILE))
