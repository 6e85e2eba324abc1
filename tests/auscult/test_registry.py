import pytest

from auscult import layout
from auscult.registry import Registry
from auscult.serving.contract import MODEL_NAME


def test_register_is_idempotent_and_versions_are_numbered(store):
    registry = Registry(store)
    first = registry.register(b"model-1", {"m": 1}, {"r": 1})
    assert registry.register(b"model-1", {"m": 1}, {"r": 1}) == first
    second = registry.register(b"model-2", {"m": 2}, {"r": 2})
    assert first.startswith("v0001-") and second.startswith("v0002-")
    assert registry.versions() == [first, second]
    assert registry.onnx(second) == b"model-2"
    assert registry.card(second)["version"] == second
    assert registry.reference(first) == {"r": 1}


def test_promote_keeps_history_and_rollback_returns_to_previous(store):
    registry = Registry(store)
    assert registry.production() is None
    first = registry.register(b"a", {}, {})
    second = registry.register(b"b", {}, {})
    registry.promote(first, "first")
    registry.promote(second, "second")
    assert registry.production()["version"] == second
    assert registry.production()["previous"] == first
    registry.rollback()
    assert registry.production()["version"] == first
    assert len(store.list(layout.production_pointers(MODEL_NAME))) == 3


def test_rollback_without_history_and_unknown_versions_fail(store):
    registry = Registry(store)
    with pytest.raises(LookupError):
        registry.rollback()
    with pytest.raises(KeyError):
        registry.promote("v9999-none", "x")
