"""Contract tests: what each component takes and gives, as KFP sees it."""

import pytest

import components
from auscult.serving import contract

RUN = {"store_uri", "run_id", "run_name"}  # every training task writes its lineage event to the store
EXPECTED = {
    "ingest": ({"sources"} | RUN, {"table", "metrics"}),
    "plan_shards": ({"table", "shards", "shard_size"}, {"Output"}),
    "measure": ({"table", "shard", "count"}, {"measured", "metrics"}),
    "curate": ({"table", "measured"} | RUN, {"curated", "profile", "metrics"}),
    "label": (
        {"table", "class_map", "min_participants_per_class", "seed"} | RUN,
        {"labelled", "review_queue", "metrics"},
    ),
    "prep_shard": ({"table", "shard", "count"} | RUN, {"part", "metrics"}),
    "prep": ({"table", "parts", "seed"} | RUN, {"prepared", "metrics", "audit"}),
    "train": (
        {"prepared", "epochs", "seed", "guard_channel", "workers", "launch", "training_image"} | RUN,
        {"model", "metrics"},
    ),
    "validate": (
        {"model", "prepared", "min_auroc", "min_participants_per_class", "min_margin_over_metadata", "max_regression"}
        | RUN,
        {"onnx_model", "metrics", "classification", "report", "summary", "Output"},
    ),
    "deploy": (
        {
            "onnx_model",
            "table",
            "store_uri",
            "serving_image",
            "gpus",
            "node_selector",
            "tolerations",
            "store_secret",
            "pseudonym_secret",
            "feedback_secret",
            "service_account",
            "serving",
            "namespace",
            "timeout_s",
            "change_plan",
        }
        | RUN,
        {"serving_manifest", "summary", "metrics", "Output"},
    ),
    "monitor": ({"store_uri"} | RUN, {"metrics", "report", "retrain", "reasons"}),
}
ARTIFACT_TYPES = {
    ("curate", "profile"): "system.HTML",
    ("prep", "audit"): "system.Markdown",
    ("validate", "summary"): "system.Markdown",
    ("deploy", "summary"): "system.Markdown",
    ("validate", "classification"): "system.ClassificationMetrics",
    ("validate", "onnx_model"): "system.Model",
    ("train", "model"): "system.Model",
    ("ingest", "table"): "system.Dataset",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_component_interface(name):
    spec = getattr(components, name).component_spec
    inputs, outputs = EXPECTED[name]
    assert set(spec.inputs or {}) == inputs
    assert set(spec.outputs or {}) == outputs
    expected = contract.image_ref("training" if name == "train" else "runtime")
    assert spec.implementation.container.image == expected


@pytest.mark.parametrize("stage, output", sorted(ARTIFACT_TYPES))
def test_artifact_types(stage, output):
    assert (
        getattr(components, stage).component_spec.outputs[output].type.split("@")[0] == ARTIFACT_TYPES[(stage, output)]
    )


def test_the_merge_tasks_collect_every_shard_s_artifact():
    """dsl.Collected hands curate and prep the list of their shard tasks' artifacts."""
    for stage, name in (("curate", "measured"), ("prep", "parts")):
        found = getattr(components, stage).component_spec.inputs[name]
        assert found.type.split("@")[0] == "system.Dataset" and found.is_artifact_list, stage


def test_validate_returns_a_bool_the_condition_can_read():
    assert components.validate.component_spec.outputs["Output"].type == "Boolean"
