"""The plain manifests, built by kustomize (``kubectl kustomize``) and validated like the chart's output."""

import shutil
import subprocess
from pathlib import Path

import pytest

from auscult.pseudonym import PSEUDONYM_KEY_ENV
from auscult.serving import contract
from auscult.stages.deploy import ServingSpec, seldon_deployment
from auscult.store import SECRET_KEYS
from auscult.training_job import ROLE_RULES, TRAINER_SERVICE_ACCOUNT
from tests.auscult.stages.test_deploy import assert_serves_the_launcher_contract
from tests.k8s import documents, validate

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (for kustomize) is not on PATH")


def build(overlay: str) -> list[dict]:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "manifests" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return documents(result.stdout)


def serving_pod(objects: list[dict]) -> dict:
    (deployment,) = [o for o in objects if o["kind"] == "SeldonDeployment"]
    return deployment["spec"]["predictors"][0]["componentSpecs"][0]["spec"]


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
def test_every_object_passes_its_schema(overlay):
    objects = build(overlay)
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
        "SeldonDeployment",
        "CronJob",
    }
    for obj in objects:
        validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "auscult"


def test_gpu_overlay_places_serving_on_gpu_nodes():
    base, gpu = serving_pod(build("base")), serving_pod(build("overlays/gpu"))
    assert "nodeSelector" not in base and "nvidia.com/gpu" not in base["containers"][0]["resources"]["limits"]
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["containers"][0]["image"] == "ghcr.io/auscult/auscult-serving:0.1.0"


def test_roles_cover_only_seldon_and_training_resources_in_their_namespace():
    objects = build("base")
    roles = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "Role"}
    assert set(roles) == {"auscult-serving", "auscult-training"}
    serving = roles["auscult-serving"]
    assert {g for rule in serving for g in rule["apiGroups"]} == {"machinelearning.seldon.io", "mlops.seldon.io"}
    assert all("delete" not in rule["verbs"] and "*" not in rule["verbs"] for rule in serving)
    # Training: exactly what launching, following and timing out a training job takes.
    assert roles["auscult-training"] == ROLE_RULES
    bindings = {o["roleRef"]["name"]: o["subjects"] for o in objects if o["kind"] == "RoleBinding"}
    assert bindings == {
        name: [{"kind": "ServiceAccount", "name": contract.SERVICE_ACCOUNT, "namespace": "auscult"}] for name in roles
    }
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_credentials_are_read_from_the_secret():
    env = serving_pod(build("base"))["containers"][0]["env"]
    from_secret = {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secret == {*SECRET_KEYS.values(), contract.ENV_FEEDBACK_KEY, PSEUDONYM_KEY_ENV}


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
def test_the_predictor_gets_what_the_launcher_needs(overlay):
    assert_serves_the_launcher_contract(serving_pod(build(overlay)))


def test_every_secret_the_predictor_reads_has_a_template():
    objects = build("base")
    templates = {o["metadata"]["name"]: set(o["stringData"]) for o in objects if o["kind"] == "Secret"}
    env = serving_pod(objects)["containers"][0]["env"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})]
    assert {contract.STORE_SECRET, contract.FEEDBACK_SECRET} <= {ref["name"] for ref in refs}
    for ref in refs:
        assert ref["key"] in templates.get(ref["name"], set()), f"secrets.yaml has no {ref['name']}/{ref['key']}"


@pytest.mark.parametrize("overlay, gpus", [("base", 0), ("overlays/gpu", 1)])
def test_the_deploy_stage_renders_the_same_seldon_deployment_field_by_field(overlay, gpus):
    (built,) = [o for o in build(overlay) if o["kind"] == "SeldonDeployment"]
    stage = seldon_deployment(
        "", "s3://auscult/prod", ServingSpec(image="ghcr.io/auscult/auscult-serving:0.1.0", gpus=gpus)
    )
    assert built["spec"] == stage["spec"]
    assert built["metadata"]["name"] == stage["metadata"]["name"]
    assert built["metadata"]["namespace"] == stage["metadata"]["namespace"]
    assert stage["metadata"]["labels"].items() <= built["metadata"]["labels"].items()


def test_every_workload_runs_read_only_and_the_predictor_has_no_token():
    objects = build("base")
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    bound = {s["name"] for o in objects if o["kind"] == "RoleBinding" for s in o["subjects"]}
    for account in (contract.PREDICTOR_SERVICE_ACCOUNT, TRAINER_SERVICE_ACCOUNT):
        assert accounts[account]["automountServiceAccountToken"] is False
        assert account not in bound
    cronjob = next(o for o in objects if o["kind"] == "CronJob")
    for pod in (serving_pod(objects), cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]):
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert {"name": mounts[contract.SCRATCH_PATH], "emptyDir": {}} in pod["volumes"]
