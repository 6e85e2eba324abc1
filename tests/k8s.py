"""Validate rendered Kubernetes objects: built-in kinds against the Kubernetes schemas (strict), Seldon
kinds against the CRDs' own openAPIV3Schema (shipped in tests/data/crds, Apache-2.0, see the README there)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
CRDS = Path(__file__).parent / "data" / "crds"


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema of every shipped CRD version."""
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(obj: dict) -> None:
    """Raise with the object's name and the failing path when ``obj`` is not valid."""
    key = (obj["apiVersion"], obj["kind"])
    name = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}"
    if key in crd_schemas():
        try:
            jsonschema.validate(obj, crd_schemas()[key])
        except jsonschema.ValidationError as error:
            raise AssertionError(f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}") from None
        return
    if "seldon.io" in obj["apiVersion"]:
        raise AssertionError(f"{name}: no CRD schema shipped for {obj['apiVersion']}")
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(f"{name}: {'.'.join(map(str, error.path))}: {error.message}") from None


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
