"""The change-control plan: its schema, what each change is, and plan changes as audit events."""

import pytest

from auscult.change_control import (
    FIRST_MODEL,
    NEW_DATA_SOURCE,
    NEW_MODEL_FAMILY,
    OPERATING_POINT_CHANGE,
    RETRAINING,
    SUBGROUP_REGRESSION,
    ChangePlan,
    classify,
    default_plan,
    load_plan,
    put_plan,
)
from auscult.errors import InputError
from auscult.lineage import Lineage

STRICT = """apiVersion: auscult.io/v1
kind: ChangeControlPlan
metadata: {name: strict, version: 1}
spec:
  automatic: [first-model, retraining]
  knownSources: []
"""
PERSON = {"user": "tester", "host": "here", "by": "Dr Example"}


def card(sources=None, family="logmel-cnn-1", specificity=0.9, subgroups=()):
    return {
        "version": "v0001-abc",
        "model": {"family": family},
        "data": {"sources": sources or {"cohort": 100}},
        "operating_point": {"target_specificity": specificity},
        "subgroups": list(subgroups),
    }


def kinds(decision):
    return [change.kind for change in decision.changes]


def test_the_shipped_plan_lets_the_first_model_and_retraining_on_known_sources_ship():
    plan = default_plan()
    assert plan.name == "default" and plan.automatic == {FIRST_MODEL, RETRAINING}
    first = classify(card(), None, plan)
    assert kinds(first) == [FIRST_MODEL] and first.automatic
    # Production's own telemetry is a known source under the default plan: the loop closes on its own.
    again = classify(card({"cohort": 100, "telemetry": 40}), card(), plan)
    assert kinds(again) == [RETRAINING] and again.automatic
    assert "ships on its own" in again.summary()


def test_a_strict_plan_holds_a_new_source_for_a_person():
    decision = classify(card({"cohort": 100, "telemetry": 40}), card(), ChangePlan.parse(STRICT, "strict.yaml"))
    assert kinds(decision) == [RETRAINING, NEW_DATA_SOURCE] and not decision.automatic
    assert [c.kind for c in decision.needs_approval] == [NEW_DATA_SOURCE]
    assert "telemetry" in decision.changes[1].detail and "awaits approval" in decision.summary()


def test_a_new_family_and_a_new_operating_point_wait_for_approval():
    plan = default_plan()
    decision = classify(card(family="transformer-1", specificity=0.95), card(), plan)
    assert kinds(decision) == [RETRAINING, NEW_MODEL_FAMILY, OPERATING_POINT_CHANGE] and not decision.automatic


def test_a_subgroup_regression_counts_only_where_the_subgroup_is_large_enough():
    plan = default_plan()
    before = [
        {"attribute": "sex", "value": "female", "auroc_ci_low": 0.80, "participants": 12},
        {"attribute": "device", "value": "call-line", "auroc_ci_low": 0.80, "participants": 3},
    ]
    after = [
        {"attribute": "sex", "value": "female", "auroc_ci_low": 0.70, "participants": 12},
        {"attribute": "device", "value": "call-line", "auroc_ci_low": 0.40, "participants": 3},
    ]
    decision = classify(card(subgroups=after), card(subgroups=before), plan)
    assert kinds(decision) == [RETRAINING, SUBGROUP_REGRESSION] and not decision.automatic
    assert "sex=female 0.800 -> 0.700" in decision.changes[1].detail and "call-line" not in decision.changes[1].detail
    small_drop = [{**after[0], "auroc_ci_low": 0.77}]
    assert classify(card(subgroups=small_drop), card(subgroups=before), plan).automatic


@pytest.mark.parametrize(
    "text, field",
    [
        ("apiVersion: auscult.io/v1\nkind: ChangeControlPlan\nmetadata: {name: x, version: 1}\nspec: {}\n", "spec"),
        (STRICT.replace("retraining]", "retrain]"), "spec/automatic/1"),
        (STRICT.replace("version: 1", "version: 0"), "metadata/version"),
        ("[not, a, plan", "YAML"),
    ],
)
def test_a_plan_that_does_not_match_the_schema_is_refused_naming_the_field(text, field):
    with pytest.raises(InputError, match=field):
        ChangePlan.parse(text, "plan.yaml")


def test_putting_a_plan_versions_it_and_records_the_change(any_store):
    plan = put_plan(any_store, STRICT, "strict.yaml", PERSON, "new sources need a clinician's review")
    assert load_plan(any_store, "strict") == plan
    assert put_plan(any_store, STRICT, "strict.yaml", PERSON, "again") == plan, "an unchanged plan is not a change"
    with pytest.raises(InputError, match="higher metadata.version"):
        put_plan(any_store, STRICT.replace("knownSources: []", "knownSources: [x]"), "s.yaml", PERSON, "edit")
    changed = put_plan(any_store, STRICT.replace("version: 1", "version: 2"), "s.yaml", PERSON, "v2")
    assert load_plan(any_store, "strict").version == changed.version == 2
    trail = Lineage(any_store).audit_trail()
    assert [act["action"] for act in trail] == ["plan-change", "plan-change"]
    assert trail[0]["actor"]["by"] == "Dr Example" and trail[0]["reason"] == "new sources need a clinician's review"
    assert trail[1]["subject"]["previous"]["version"] == 1 and trail[1]["subject"]["plan"]["version"] == 2


def test_a_run_naming_a_plan_the_store_lacks_is_told_how_to_put_one(store):
    assert load_plan(store, "") == default_plan()
    with pytest.raises(InputError, match="auscult plan put"):
        load_plan(store, "missing")


def test_a_production_card_from_before_the_plan_does_not_turn_retraining_into_a_new_family():
    old = {"version": "v0001-abc", "metrics": {}, "operating_point": {"target_specificity": 0.9}}
    decision = classify(card({"cohort": 100, "new": 5}), old, ChangePlan.parse(STRICT, "strict.yaml"))
    assert kinds(decision) == [RETRAINING] and decision.automatic
