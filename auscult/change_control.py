"""The change-control plan: which changes to the production model ship on their own, and which wait for a named
person's approval.

A plan is a versioned YAML file checked against ``plans/plan.schema.json``; the project ships
``plans/default.yaml``. Plans put in the store (``governance/plans/<name>/``) are versioned there, each change an
audit event, and a run applies the one its ``change_plan`` parameter names. The deploy stage classifies a blessed
model against production (:func:`classify`) and promotes it only when the plan allows every change it makes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from auscult import layout
from auscult.errors import InputError
from auscult.lineage import Lineage
from auscult.store import ObjectStore

PLANS = Path(__file__).parent / "plans"
SCHEMA_FILE = PLANS / "plan.schema.json"
DEFAULT_PLAN = "default"

FIRST_MODEL = "first-model"
RETRAINING = "retraining"
NEW_DATA_SOURCE = "new-data-source"
NEW_MODEL_FAMILY = "new-model-family"
OPERATING_POINT_CHANGE = "operating-point-change"
SUBGROUP_REGRESSION = "subgroup-regression"


@dataclass(frozen=True)
class ChangePlan:
    name: str
    version: int
    automatic: frozenset[str]
    known_sources: frozenset[str]
    max_subgroup_drop: float
    min_subgroup_participants: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def reference(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    @classmethod
    def parse(cls, text: str, where: str) -> ChangePlan:
        """The plan in ``text``; an InputError naming ``where`` and the field when it does not match the schema."""
        import jsonschema

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(f"{where} is not YAML: {error}") from None
        try:
            jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))
        except jsonschema.ValidationError as error:
            field = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise InputError(
                f"{where} is not a change-control plan: at {field}: {error.message} (see {SCHEMA_FILE.name} and "
                f"the shipped {PLANS.name}/default.yaml)"
            ) from None
        spec = document["spec"]
        return cls(
            name=document["metadata"]["name"],
            version=document["metadata"]["version"],
            automatic=frozenset(spec["automatic"]),
            known_sources=frozenset(spec.get("knownSources", [])),
            max_subgroup_drop=float(spec.get("maxSubgroupDrop", 0.05)),
            min_subgroup_participants=int(spec.get("minSubgroupParticipantsPerClass", 10)),
            text=text,
        )


def default_plan() -> ChangePlan:
    path = PLANS / f"{DEFAULT_PLAN}.yaml"
    return ChangePlan.parse(path.read_text(), str(path))


def stored_plans(store: ObjectStore, name: str) -> list[str]:
    return store.list(layout.plan(name))


def load_plan(store: ObjectStore, name: str = "") -> ChangePlan:
    """The newest version of the plan ``name`` in ``store``; the shipped default for "" (or "default" before
    anyone has put one)."""
    name = name or DEFAULT_PLAN
    keys = stored_plans(store, name)
    if not keys:
        if name == DEFAULT_PLAN:
            return default_plan()
        raise InputError(
            f"{store.uri(layout.plan(name))} holds no plan {name!r}: put one with `auscult plan put FILE --store "
            f"{store.root}`, or leave change_plan empty for the default"
        )
    return ChangePlan.parse(store.get(keys[-1]).decode(), store.uri(keys[-1]))


def put_plan(store: ObjectStore, text: str, where: str, acting: Mapping[str, object], reason: str) -> ChangePlan:
    """Store ``text`` as the newest version of the plan it names, and record the change as an audit event."""
    plan = ChangePlan.parse(text, where)
    keys = stored_plans(store, plan.name)
    previous = ChangePlan.parse(store.get(keys[-1]).decode(), keys[-1]) if keys else None
    if previous is not None and previous.sha256 == plan.sha256:
        return previous
    if previous is not None and plan.version <= previous.version:
        raise InputError(
            f"{where}: plan {plan.name!r} is at version {previous.version} in the store; a changed plan needs a "
            f"higher metadata.version"
        )
    key = layout.plan(plan.name, len(keys) + 1)
    store.put(key, text.encode())
    Lineage(store).audit(
        "plan-change",
        acting,
        reason,
        subject={"plan": plan.reference, "previous": previous.reference if previous else None},
        outputs=[{"namespace": store.root, "name": key, "facets": {}}],
    )
    return plan


@dataclass(frozen=True)
class Change:
    kind: str
    detail: str


@dataclass(frozen=True)
class Decision:
    """What a candidate changes about production, and whether the plan lets all of it ship on its own."""

    plan: dict
    changes: tuple[Change, ...]
    automatic: bool

    @property
    def needs_approval(self) -> list[Change]:
        return [c for c in self.changes if c.kind not in self.plan["automatic"]]

    def summary(self) -> str:
        listed = "; ".join(f"{c.kind} ({c.detail})" for c in self.changes)
        plan = f"plan {self.plan['name']!r} v{self.plan['version']}"
        if self.automatic:
            return f"ships on its own under {plan}: {listed}"
        waiting = ", ".join(c.kind for c in self.needs_approval)
        return f"awaits approval under {plan} ({waiting}): {listed}"

    def as_dict(self) -> dict:
        return {
            "plan": {k: v for k, v in self.plan.items() if k != "automatic"},
            "automatic": self.automatic,
            "changes": [{"kind": c.kind, "detail": c.detail} for c in self.changes],
        }


def classify(candidate: Mapping, production: Mapping | None, plan: ChangePlan) -> Decision:
    """The changes that promoting the model of card ``candidate`` over the one of card ``production`` makes."""
    reference = {**plan.reference, "automatic": sorted(plan.automatic)}
    if production is None:
        changes = (Change(FIRST_MODEL, "no model is in production"),)
        return Decision(reference, changes, FIRST_MODEL in plan.automatic)
    found = [Change(RETRAINING, f"replaces {production.get('version', 'the production model')}")]
    # A card registered before a field was kept says nothing about it: unknown is not a change.
    family, current_family = candidate.get("model", {}).get("family"), production.get("model", {}).get("family")
    if current_family is not None and family != current_family:
        found.append(Change(NEW_MODEL_FAMILY, f"{current_family or 'unknown'} -> {family}"))
    trained_on = production.get("data", {}).get("sources")
    known = set(trained_on or {}) | plan.known_sources
    new_sources = sorted(set(candidate.get("data", {}).get("sources", {})) - known) if trained_on is not None else []
    if new_sources:
        found.append(Change(NEW_DATA_SOURCE, "trained on " + ", ".join(new_sources)))
    target = candidate.get("operating_point", {}).get("target_specificity")
    current_target = production.get("operating_point", {}).get("target_specificity")
    if target != current_target:
        found.append(Change(OPERATING_POINT_CHANGE, f"target specificity {current_target} -> {target}"))

    def judged(card: Mapping) -> dict[tuple[str, str], float]:
        """Subgroups with enough participants of each class for their lower bound to mean something."""
        return {
            (s["attribute"], s["value"]): s["auroc_ci_low"]
            for s in card.get("subgroups", [])
            if s.get("participants", 0) >= plan.min_subgroup_participants
        }

    before, after = judged(production), judged(candidate)
    drops = [
        f"{a}={v} {before[(a, v)]:.3f} -> {low:.3f}"
        for (a, v), low in after.items()
        if (a, v) in before and before[(a, v)] - low > plan.max_subgroup_drop
    ]
    if drops:
        found.append(
            Change(
                SUBGROUP_REGRESSION, f"AUROC lower bound falls by over {plan.max_subgroup_drop}: " + ", ".join(drops)
            )
        )
    return Decision(reference, tuple(found), all(c.kind in plan.automatic for c in found))
