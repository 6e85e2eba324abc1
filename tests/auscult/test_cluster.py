"""Roll-out on Kubernetes, against a local server that speaks the API calls it makes."""

import pytest

from auscult import layout
from auscult.cluster import RolloutError, is_available
from auscult.registry import Registry
from auscult.serving import contract
from auscult.stages.deploy import ServingSpec, deploy


def deploy_to(cluster, registry, onnx: bytes, target="seldon-v1"):
    return deploy(
        registry,
        onnx,
        {"metrics": {}},
        {"input": {}},
        ServingSpec(namespace="screening"),
        target,
        cluster,
        timeout_s=1,
        poll_s=0.05,
    )


def test_a_healthy_rollout_applies_server_side_and_waits(kube, store):
    api, cluster = kube
    registry = Registry(store)
    result = deploy_to(cluster, registry, b"model-1")
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert len(patches) == 1
    assert (
        patches[0]["path"]
        == "/apis/machinelearning.seldon.io/v1/namespaces/screening/seldondeployments/auscult-screening"
    )
    assert patches[0]["query"]["force"] == ["true"]
    env = patches[0]["body"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["env"]
    assert {"name": contract.ENV_MODEL_VERSION, "value": result.version} in env
    assert len([r for r in api.requests if r["method"] == "GET"]) == api.ready_after
    assert registry.production()["version"] == result.version


def test_a_failed_rollout_rolls_back_to_the_previous_version(kube, store):
    api, cluster = kube
    registry = Registry(store)
    first = deploy_to(cluster, registry, b"model-1")
    bad = registry.register(b"model-2", {}, {})
    api.failing.add(bad)
    with pytest.raises(RolloutError, match="rolled back"):
        deploy_to(cluster, registry, b"model-2")
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    versions = [p["body"]["metadata"]["labels"]["auscult.io/model-version"] for p in patches]
    assert versions == [first.version, bad, first.version], "apply new, then re-apply the previous version"
    assert registry.production()["version"] == first.version
    assert "did not become available" in registry.production()["reason"]


def test_first_rollout_failing_has_nothing_to_roll_back_to(kube, store):
    api, cluster = kube
    registry = Registry(store)
    api.failing.add(registry.register(b"model-1", {}, {}))
    with pytest.raises(RolloutError, match="no previous version"):
        deploy_to(cluster, registry, b"model-1")


def test_seldon_v2_publishes_a_triton_repository_and_applies_a_model(kube, store):
    api, cluster = kube
    registry = Registry(store)
    result = deploy_to(cluster, registry, b"onnx-bytes", target="seldon-v2")
    (patch,) = [r for r in api.requests if r["method"] == "PATCH"]
    assert patch["path"] == "/apis/mlops.seldon.io/v1alpha1/namespaces/screening/models/auscult-screening"
    assert patch["body"]["spec"]["requirements"] == ["onnx"]
    base = layout.triton_model(contract.MODEL_NAME, result.version)
    assert patch["body"]["spec"]["storageUri"] == store.uri(base)
    assert store.get(f"{base}/1/model.onnx") == b"onnx-bytes"
    assert 'platform: "onnxruntime_onnx"' in store.get(f"{base}/config.pbtxt").decode()


def test_availability_rules():
    assert is_available({"kind": "SeldonDeployment", "status": {"state": "Available"}})
    assert not is_available({"kind": "SeldonDeployment", "status": {"state": "Failed"}})
    assert is_available({"kind": "Model", "status": {"conditions": [{"type": "ModelReady", "status": "True"}]}})
    assert not is_available({"kind": "Model", "status": {"conditions": [{"type": "ModelReady", "status": "False"}]}})
    assert not is_available({"kind": "Model"})
