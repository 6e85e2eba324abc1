import hashlib
import re

import pytest

from auscult import __version__, layout
from auscult.pseudonym import PSEUDONYM_KEY_ENV, PSEUDONYM_SECRET
from auscult.registry import Registry
from auscult.serving import contract
from auscult.serving.contract import MODEL_NAME
from auscult.serving.telemetry import DEFAULT_SPOOL_MB
from auscult.stages.deploy import KEY_FIELD, ServingSpec, deploy, seldon_deployment, what_it_is
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
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {contract.SPOOL_VOLUME: contract.SPOOL_PATH, contract.SCRATCH_VOLUME: contract.SCRATCH_PATH}
    # Read-only everywhere but those two emptyDirs; an account of its own, with no token to steal.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": contract.SCRATCH_VOLUME, "emptyDir": {}} in pod["volumes"]
    assert pod["serviceAccountName"] != contract.SERVICE_ACCOUNT and pod["automountServiceAccountToken"] is False
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
    assert {"name": contract.SPOOL_VOLUME, "emptyDir": {"sizeLimit": "3Gi"}} in pod["volumes"]


def test_deploy_promotes_and_keeps_the_previous_version(store):
    registry = Registry(store)
    first = deploy(registry, b"onnx-1", {"metrics": {}}, {"input": {}})
    second = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert first.previous is None and second.previous == first.version
    assert registry.production()["version"] == second.version
    again = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert again.version == second.version and len(store.list(layout.production_pointers(MODEL_NAME))) == 2
    assert again.notes() == [
        f"not promoted: {second.version} is in production already; production stays {second.version}"
    ]


def test_a_rerun_that_trains_earlier_weights_again_moves_nothing(store):
    """Rerunning on unchanged inputs retrains the first model bit for bit: production must not go back to it."""
    registry = Registry(store)
    first = deploy(registry, b"onnx-1", {"metrics": {}}, {"input": {}})
    second = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    events = len(store.list(layout.LINEAGE_EVENTS))
    rerun = deploy(registry, b"onnx-1", {"metrics": {}}, {"input": {}})
    assert rerun.version == first.version and not rerun.promoted and not rerun.awaits_approval
    assert registry.production()["version"] == second.version and registry.versions() == [first.version, second.version]
    assert "production has moved on from it" in rerun.notes()[0] and "auscult rollback" in rerun.notes()[0]
    assert len(store.list(layout.LINEAGE_EVENTS)) == events, "nothing registered, nothing promoted"


def test_rendered_seldon_deployment_passes_the_crd_schema():
    from tests.k8s import validate

    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult"))
    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(gpus=0)))


def test_model_card_records_data_code_lineage_and_interface():
    from auscult.lineage import RunRef
    from auscult.stages.deploy import model_card
    from auscult.stages.validate import Verdict

    subgroups = [{"attribute": "sex", "value": "female", "auroc_ci_low": 0.7, "participants": 12}]
    verdict = Verdict(True, ["pass: x"], {"auroc": 0.9}, {}, subgroups, {"cohort": 120}, {"synthetic": 120})
    run = RunRef("12345678", "auscult-training-2026-12-01")
    card = model_card(verdict, b"table bytes", run)
    digest = hashlib.sha256(b"table bytes").hexdigest()
    assert card["data"] == {"table_sha256": digest, "sources": {"cohort": 120}, "origins": {"synthetic": 120}}
    assert card["code"]["package"] == __version__ and card["metrics"] == {"auroc": 0.9}
    assert card["model"]["family"] and card["subgroups"] == subgroups
    assert card["lineage"]["run"] == run.name and card["lineage"]["run_id"] == run.run_id
    assert card["lineage"]["splits"] == f"lineage/runs/{run.run_id}/prep.json"
    assert card["input"]["sample_rate"] == 16000 and card["output"]["classes"] == ["negative", "positive"]
    assert card["front_end"] == {"f_max_hz": 8000.0, "channel_augmentation": False}
    capped = model_card(Verdict(True, [], {"front_end_f_max_hz": 3350.0, "channel_augmentation": 1.0}, {}), b"t")
    assert capped["front_end"] == {"f_max_hz": 3350.0, "channel_augmentation": True} and capped["lineage"] == {}


STRICT_PLAN = """apiVersion: auscult.io/v1
kind: ChangeControlPlan
metadata: {name: strict, version: 1}
spec: {automatic: [first-model, retraining], knownSources: []}
"""
PERSON = {"user": "clinician", "host": "ward", "by": "Dr Example"}


def blessed_card(sources: dict) -> dict:
    return {"metrics": {"auroc": 0.9}, "validation": ["pass: gate"], "data": {"sources": sources}}


def test_outside_the_plan_a_model_awaits_approval_and_production_stays(any_store):
    from auscult.change_control import ChangePlan
    from auscult.lineage import Lineage
    from auscult.registry import AWAITING_APPROVAL
    from auscult.stages.deploy import approve

    registry, plan = Registry(any_store), ChangePlan.parse(STRICT_PLAN, "strict.yaml")
    first = deploy(registry, b"onnx-1", blessed_card({"cohort": 90}), {"input": {}}, plan=plan)
    assert first.promoted and registry.production()["version"] == first.version
    second = deploy(registry, b"onnx-2", blessed_card({"cohort": 90, "telemetry": 40}), {"input": {}}, plan=plan)
    assert not second.promoted and second.previous == first.version
    assert registry.production()["version"] == first.version
    assert registry.status(second.version)["status"] == AWAITING_APPROVAL
    assert "new-data-source" in second.decision.summary()
    # A rerun of the same run asks once.
    deploy(registry, b"onnx-2", blessed_card({"cohort": 90, "telemetry": 40}), {"input": {}}, plan=plan)

    pointer = approve(registry, second.version, PERSON, "telemetry reviewed by the clinical lead")
    assert pointer["version"] == registry.production()["version"] == second.version
    trail = Lineage(any_store).audit_trail()
    assert [a["action"] for a in trail] == ["register", "promote", "register", "await-approval", "approve"]
    approval = trail[-1]
    assert approval["actor"]["by"] == "Dr Example" and approval["reason"] == "telemetry reviewed by the clinical lead"
    assert approval["evidence"]["validation"] == ["pass: gate"] and approval["evidence"]["auroc"] == 0.9
    assert approval["subject"] == {"model": MODEL_NAME, "version": second.version, "previous": first.version}


def test_a_rejected_version_cannot_be_approved_and_rollback_is_recorded(store):
    from auscult.errors import InputError
    from auscult.lineage import Lineage
    from auscult.stages.deploy import approve, reject, rollback

    registry = Registry(store)
    first = deploy(registry, b"onnx-1", blessed_card({"a": 1}), {"input": {}})
    second = deploy(registry, b"onnx-2", blessed_card({"a": 1}), {"input": {}})
    with pytest.raises(InputError, match="roll back first"):
        reject(registry, second.version, PERSON, "no")
    pointer = rollback(registry, PERSON, "false positives reported by the clinic")
    assert pointer["version"] == first.version and registry.production()["version"] == first.version
    reject(registry, second.version, PERSON, "false positives")
    with pytest.raises(InputError, match="rejected"):
        approve(registry, second.version, PERSON, "changed my mind")
    with pytest.raises(InputError, match="no registered version"):
        approve(registry, "v9999-nothing", PERSON, "x")
    assert [a["action"] for a in Lineage(store).audit_trail()][-2:] == ["rollback", "reject"]


def test_approval_on_a_cluster_rolls_out_the_serving_spec_recorded_at_registration(store):
    from kubernetes import client

    from auscult.change_control import ChangePlan
    from auscult.cluster import Cluster
    from auscult.stages.deploy import approve
    from tests.auscult.kube_api import FakeKube, serve

    api = FakeKube()
    server, url = serve(api)
    try:
        cluster = Cluster(client.ApiClient(client.Configuration(host=url)), "screening")
        registry, plan = Registry(store), ChangePlan.parse(STRICT_PLAN, "strict.yaml")
        spec = ServingSpec(namespace="screening", image="registry.example/serving:7", gpus=0)
        deploy(registry, b"m-1", blessed_card({"a": 1}), {}, spec, cluster=cluster, timeout_s=1, poll_s=0.01, plan=plan)
        waiting = deploy(
            registry, b"m-2", blessed_card({"a": 1, "b": 1}), {}, spec, cluster=cluster, timeout_s=1, plan=plan
        )
        assert not waiting.promoted and len([r for r in api.requests if r["method"] == "PATCH"]) == 1
        approve(registry, waiting.version, PERSON, "ok", cluster, poll_s=0.01)
    finally:
        server.shutdown()
    applied = [r["body"] for r in api.requests if r["method"] == "PATCH"][-1]
    container = applied["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
    assert applied["metadata"]["labels"]["auscult.io/model-version"] == waiting.version
    assert (
        container["image"] == "registry.example/serving:7" and "nvidia.com/gpu" not in container["resources"]["limits"]
    )


def test_a_rejected_or_erasure_flagged_version_never_reaches_production(store):
    from auscult.errors import InputError
    from auscult.stages.deploy import approve, reject, rollback

    registry = Registry(store)
    first = deploy(registry, b"onnx-1", blessed_card({"a": 1}), {"input": {}})
    second = deploy(registry, b"onnx-2", blessed_card({"a": 1}), {"input": {}})
    rollback(registry, PERSON, "complaints")
    reject(registry, second.version, PERSON, "complaints confirmed")
    third = deploy(registry, b"onnx-3", blessed_card({"a": 1}), {"input": {}})
    # The rejected bytes come back in a later run: registered once, never promoted.
    again = deploy(registry, b"onnx-2", blessed_card({"a": 1}), {"input": {}})
    assert not again.promoted and "rejected" in again.held and registry.production()["version"] == third.version
    assert not again.awaits_approval and not any("production is now" in note for note in again.notes())
    registry.flag_erased(first.version, "e1", {"erasure": "e1", "at": "2026-12-01T00:00:00+00:00", "run": "r"})
    with pytest.raises(InputError, match="erased"):
        rollback(registry, PERSON, "back to the first")
    with pytest.raises(InputError, match="erased"):
        approve(registry, first.version, PERSON, "it was fine")


def test_a_version_says_what_it_was_trained_on_and_warns_when_that_was_synthetic():
    card = {
        "version": "v0003-abc",
        "data": {"sources": {"cohort": 300, "telemetry": 40}, "origins": {"synthetic": 300, "telemetry": 40}},
        "metrics": {"auroc": 0.91, "auroc_ci_low": 0.84, "auroc_ci_high": 0.96},
        "operating_point": {
            "threshold": 0.42,
            "target_specificity": 0.9,
            "sensitivity_at_target_specificity": 0.71,
            "specificity_at_threshold": 0.88,
        },
    }
    said = "\n".join(what_it_is(card))
    assert "v0003-abc: trained on 340 recordings from cohort (300), telemetry (40)" in said
    assert "AUROC 0.910 (95% CI over participants 0.840-0.960)" in said and "positive above 0.420" in said
    assert "WARNING: 300 of its 340 training recordings are synthetic" in said
    card["data"]["origins"] = {"dataset": 340}
    assert "WARNING" not in "\n".join(what_it_is(card))
