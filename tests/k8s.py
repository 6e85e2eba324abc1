"""Validate rendered Kubernetes objects: built-in kinds against the Kubernetes schemas (strict), Seldon and
Kubeflow kinds against the CRDs' own openAPIV3Schema (shipped in tests/data/crds, Apache-2.0, see the README
there), as strictly as an API server with ``fieldValidation=Strict``: a field the schema does not know fails."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
CRDS = Path(__file__).parent / "data" / "crds"
CRD_GROUPS = ("seldon.io", "kubeflow.org")  # their kinds are validated against a shipped CRD or refused


def strict(schema: dict) -> dict:
    """The schema with unknown fields refused wherever the CRD lists an object's fields (a structural schema
    leaves them to be pruned, silently, unless the request asks for strict validation). allOf/anyOf/oneOf only
    constrain values in a structural schema, so they are left as they are."""
    out = dict(schema)
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema of every shipped CRD version."""
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C: 10x faster
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


@cache
def crd_validator(key: tuple[str, str]) -> jsonschema.protocols.Validator:
    """One validator per kind: checking a CRD's schema itself, as jsonschema.validate does each call, takes seconds."""
    schema = crd_schemas()[key]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate(obj: dict) -> None:
    """Raise with the object's name and the failing path when ``obj`` is not valid."""
    key = (obj["apiVersion"], obj["kind"])
    name = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}"
    if key in crd_schemas():
        error = jsonschema.exceptions.best_match(crd_validator(key).iter_errors(obj))
        if error is not None:
            raise AssertionError(f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
        return
    if obj["apiVersion"].split("/")[0].endswith(CRD_GROUPS):
        raise AssertionError(f"{name}: no CRD schema shipped for {obj['apiVersion']} {obj['kind']}")
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(f"{name}: {'.'.join(map(str, error.path))}: {error.message}") from None


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
