import hashlib
import re

import pytest

from auscult import __version__, layout
from auscult.pseudonym import PSEUDONYM_KEY_ENV, PSEUDONYM_SECRET
from auscult.registry import Registry
from auscult.serving import contract
from auscult.serving.contract import MODEL_NAME
from auscult.serving.telemetry import DEFAULT_SPOOL_MB
from auscult.stages.deploy import KEY_FIELD, ServingSpec, deploy, seldon_deployment
from auscult.store import SECRET_KEYS

UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()
    return float(number) * UNITS[unit]


def assert_serves_the_launcher_contract(
    pod: dict, feedback_secret: str = contract.FEEDBACK_SECRET, pseudonym_secret: str = PSEUDONYM_SECRET
) -> None:
    """What ``python -m auscult.serving.launcher`` and the model class need from their pod, wherever the pod was
    rendered: the deploy stage, the Helm chart or the kustomize base (their tests call this)."""
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert len(env) == len(container["env"]), "an env variable is set twice"
    assert env[contract.ENV_HOST] == {"name": contract.ENV_HOST, "value": "0.0.0.0"}
    assert env[contract.ENV_TELEMETRY_SPOOL] == {"name": contract.ENV_TELEMETRY_SPOOL, "value": contract.SPOOL_PATH}
    assert env[contract.ENV_FEEDBACK_KEY]["valueFrom"] == {"secretKeyRef": {"name": feedback_secret, "key": KEY_FIELD}}
    assert env[PSEUDONYM_KEY_ENV]["valueFrom"] == {"secretKeyRef": {"name": pseudonym_secret, "key": KEY_FIELD}}
    # The Seldon operator sets the ports, and the image's CMD starts the launcher.
    assert {contract.ENV_HTTP_PORT, contract.ENV_METRICS_PORT}.isdisjoint(env)
    assert "command" not in container and "args" not in container
    assert container["volumeMounts"] == [{"name": contract.SPOOL_VOLUME, "mountPath": contract.SPOOL_PATH}]
    (volume,) = [v for v in pod["volumes"] if v["name"] == contract.SPOOL_VOLUME]
    assert set(volume) == {"name", "emptyDir"}
    # A full spool must answer 503 before the kubelet evicts the pod for filling its emptyDir.
    assert quantity_bytes(volume["emptyDir"]["sizeLimit"]) > DEFAULT_SPOOL_MB * 2**20


def test_seldon_deployment_requests_a_gpu_on_gpu_nodes():
    manifest = seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(image="reg/serving:1"))
    assert manifest["kind"] == "SeldonDeployment"
    pod = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "reg/serving:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": contract.ENV_MODEL_VERSION, "value": "v0001-abc"} in container["env"]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert from_secret["AWS_SECRET_ACCESS_KEY"] == {"name": "auscult-object-store", "key": "secret-key"}
    assert set(from_secret) == {*SECRET_KEYS.values(), contract.ENV_FEEDBACK_KEY, PSEUDONYM_KEY_ENV}
    assert manifest["spec"]["predictors"][0]["graph"]["name"] == container["name"]


def test_cpu_serving_has_no_gpu_placement():
    pod = seldon_deployment("v1", "file:///x", ServingSpec(gpus=0))["spec"]["predictors"][0]["componentSpecs"][0][
        "spec"
    ]
    assert "nodeSelector" not in pod and "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize("gpus", [1, 0])
def test_seldon_deployment_runs_the_launcher_with_its_keys_and_spool(gpus):
    manifest = seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(gpus=gpus))
    assert_serves_the_launcher_contract(manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"])
    assert manifest["spec"]["predictors"][0]["graph"]["endpoint"] == {"type": "REST"}  # no gRPC port any more


def test_seldon_deployment_takes_its_secrets_and_spool_size_from_the_spec():
    spec = ServingSpec(feedback_secret="team-feedback", pseudonym_secret="team-pseudonym", spool_size_limit="3Gi")
    pod = seldon_deployment("v1", "s3://bucket/auscult", spec)["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert_serves_the_launcher_contract(pod, "team-feedback", "team-pseudonym")
    assert pod["volumes"] == [{"name": contract.SPOOL_VOLUME, "emptyDir": {"sizeLimit": "3Gi"}}]


def test_deploy_promotes_and_keeps_the_previous_version(store):
    registry = Registry(store)
    first = deploy(registry, b"onnx-1", {"metrics": {}}, {"input": {}})
    second = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert first.previous is None and second.previous == first.version
    assert registry.production()["version"] == second.version
    again = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert again.version == second.version and len(store.list(layout.production_pointers(MODEL_NAME))) == 2


def test_rendered_seldon_deployment_passes_the_crd_schema():
    from tests.k8s import validate

    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult"))
    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(gpus=0)))


def test_model_card_records_data_code_lineage_and_interface():
    from auscult.lineage import RunRef
    from auscult.stages.deploy import model_card
    from auscult.stages.validate import Verdict

    subgroups = [{"attribute": "sex", "value": "female", "auroc_ci_low": 0.7, "participants": 12}]
    verdict = Verdict(True, ["pass: x"], {"auroc": 0.9}, {}, subgroups, {"cohort": 120})
    run = RunRef("12345678", "auscult-training-2026-12-01")
    card = model_card(verdict, b"table bytes", run)
    assert card["data"] == {"table_sha256": hashlib.sha256(b"table bytes").hexdigest(), "sources": {"cohort": 120}}
    assert card["code"]["package"] == __version__ and card["metrics"] == {"auroc": 0.9}
    assert card["model"]["family"] and card["subgroups"] == subgroups
    assert card["lineage"]["run"] == run.name and card["lineage"]["run_id"] == run.run_id
    assert card["lineage"]["splits"] == f"lineage/runs/{run.run_id}/prep.json"
    assert card["input"]["sample_rate"] == 16000 and card["output"]["classes"] == ["negative", "positive"]
    assert card["front_end"] == {"f_max_hz": 8000.0, "channel_augmentation": False}
    capped = model_card(Verdict(True, [], {"front_end_f_max_hz": 3350.0, "channel_augmentation": 1.0}, {}), b"t")
    assert capped["front_end"] == {"f_max_hz": 3350.0, "channel_augmentation": True} and capped["lineage"] == {}
