"""The Helm chart, through Helm's own engine (lint, schema, render), and what it renders, through the
Kubernetes schemas and the Seldon CRDs."""

from pathlib import Path

import helm_python as helm
import pytest

from auscult.pseudonym import PSEUDONYM_KEY_ENV
from auscult.serving import contract
from auscult.stages.deploy import ServingSpec, seldon_deployment
from auscult.store import SECRET_KEYS
from auscult.training_job import ROLE_RULES, TRAINER_SERVICE_ACCOUNT
from tests.auscult.stages.test_deploy import assert_serves_the_launcher_contract
from tests.k8s import documents, validate

CHART = Path(__file__).resolve().parents[2] / "charts" / "auscult"
GPU_V2 = {"seldon": {"version": "v2", "modelVersion": "v0003-0123456789ab"}, "gpu": {"enabled": True, "count": 2}}
CPU_V1 = {"gpu": {"enabled": False}, "monitor": {"enabled": False}, "kfp": {"uploadPipeline": False}}


def render(values: dict | None = None) -> dict[str, list[dict]]:
    rendered = helm.Chart.load(CHART).render(values, name="auscult", namespace="screening", is_install=True)
    return {path: documents(text) for path, text in rendered.items() if not path.endswith("NOTES.txt")}


def objects(values: dict | None = None) -> list[dict]:
    return [obj for docs in render(values).values() for obj in docs]


def by_kind(values: dict | None = None) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects(values)}


@pytest.mark.parametrize("values", [None, GPU_V2, CPU_V1], ids=["default", "gpu-v2", "cpu-v1"])
def test_lint_reports_no_errors(values):
    report = helm.lint(CHART, values, strict=False)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 3]


@pytest.mark.parametrize("values", [None, GPU_V2, CPU_V1], ids=["default", "gpu-v2", "cpu-v1"])
def test_every_rendered_object_passes_its_schema(values):
    rendered = objects(values)
    assert rendered
    for obj in rendered:
        validate(obj)


def test_default_install_has_what_an_operator_needs():
    kinds = by_kind()
    assert {"ServiceAccount", "Role", "RoleBinding", "SeldonDeployment", "CronJob", "Job", "Pod"} <= set(kinds)
    assert kinds["Job"]["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert kinds["Pod"]["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert kinds["CronJob"]["spec"]["schedule"] == "0 3 * * *"


def test_role_is_least_privilege():
    rendered = objects()
    roles = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Role"}
    assert set(roles) == {"auscult-serving", "auscult-training"}
    serving = roles["auscult-serving"]["rules"]
    assert {g for rule in serving for g in rule["apiGroups"]} == {"machinelearning.seldon.io", "mlops.seldon.io"}
    assert all("delete" not in rule["verbs"] and "*" not in rule["verbs"] for rule in serving)
    # Training: exactly what launching, following and timing out a training job takes.
    assert roles["auscult-training"]["rules"] == ROLE_RULES
    bindings = {o["roleRef"]["name"]: o for o in rendered if o["kind"] == "RoleBinding"}
    assert set(bindings) == set(roles)
    pipeline = {"kind": "ServiceAccount", "name": contract.SERVICE_ACCOUNT, "namespace": "screening"}
    assert all(binding["subjects"] == [pipeline] for binding in bindings.values())
    assert not [o for o in rendered if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_training_can_be_left_out():
    rendered = objects({"training": {"enabled": False}})
    assert [o["metadata"]["name"] for o in rendered if o["kind"] == "Role"] == ["auscult-serving"]
    assert TRAINER_SERVICE_ACCOUNT not in {o["metadata"]["name"] for o in rendered if o["kind"] == "ServiceAccount"}


def test_a_training_operator_value_compiles_the_pipeline_to_launch_jobs():
    """The upload hook compiles with the operator, so the train task launches its workers under the trainer account;
    without one, it trains in its own pod (the flags are absent)."""

    def upload_command(values: dict | None = None) -> list[str]:
        (job,) = [o for o in objects(values) if o["kind"] == "Job"]
        return job["spec"]["template"]["spec"]["containers"][0]["command"]

    assert "--training-operator" not in upload_command()
    command = upload_command({"training": {"operator": "pytorchjob", "gpusPerWorker": 0}})
    flags = dict(zip(command[::1], command[1:], strict=False))
    assert flags["--training-operator"] == "pytorchjob" and flags["--training-gpus-per-worker"] == "0"
    assert flags["--training-service-account"] == TRAINER_SERVICE_ACCOUNT
    from pipelines.cli import parser

    args = parser().parse_args(command[1:])
    assert args.training_operator == "pytorchjob" and args.training_gpus_per_worker == 0


def test_v1_serving_requests_gpus_on_gpu_nodes_with_secret_credentials():
    pod = by_kind()["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    secret_env = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_env == {*SECRET_KEYS.values(), contract.ENV_FEEDBACK_KEY, PSEUDONYM_KEY_ENV}
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(
    "values, spec, version",
    [
        (None, {}, ""),
        (CPU_V1, {"gpus": 0}, ""),
        (
            {"seldon": {"modelVersion": "v0003-0123456789ab"}, "objectStore": {"existingSecret": "team-store"}},
            {"store_secret": "team-store"},
            "v0003-0123456789ab",
        ),
        (
            {
                "feedbackSecret": "team-feedback",
                "pseudonymSecret": "team-pseudonym",
                "seldon": {"telemetrySpool": {"sizeLimit": "4Gi"}},
            },
            {"feedback_secret": "team-feedback", "pseudonym_secret": "team-pseudonym", "spool_size_limit": "4Gi"},
            "",
        ),
    ],
    ids=["default", "cpu", "pinned-version-own-secret", "own-keys-and-spool"],
)
def test_the_deploy_stage_renders_the_chart_s_seldon_deployment_field_by_field(values, spec, version):
    """A model swap by the pipeline must change nothing but what it means to: the chart's SeldonDeployment and
    the deploy stage's are the same object."""
    chart = by_kind(values)["SeldonDeployment"]
    image = chart["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"]
    stage = seldon_deployment(version, "s3://auscult/prod", ServingSpec(namespace="screening", image=image, **spec))
    assert chart["spec"] == stage["spec"]
    assert chart["metadata"]["name"] == stage["metadata"]["name"]
    assert stage["metadata"]["labels"].items() <= chart["metadata"]["labels"].items()


def test_the_chart_runs_the_predictor_as_the_serving_contract_says():
    pod = by_kind()["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"] == contract.POD_SECURITY_CONTEXT
    assert container["securityContext"] == contract.CONTAINER_SECURITY_CONTEXT
    assert container["name"] == contract.CONTAINER
    assert pod["serviceAccountName"] == contract.PREDICTOR_SERVICE_ACCOUNT
    env = {e["name"]: e for e in container["env"]}
    assert env[contract.ENV_ORT_THREADS]["valueFrom"]["resourceFieldRef"] == contract.ORT_THREADS_FROM_CPU_REQUEST
    assert {contract.ENV_STORE_URI, contract.ENV_MODEL_VERSION} <= set(env)
    assert_serves_the_launcher_contract(pod)


def test_the_chart_s_keys_and_spool_size_are_values():
    values = {"feedbackSecret": "f", "pseudonymSecret": "p", "seldon": {"telemetrySpool": {"sizeLimit": "512Mi"}}}
    pod = by_kind(values)["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert_serves_the_launcher_contract(pod, feedback_secret="f", pseudonym_secret="p")
    assert {"name": contract.SPOOL_VOLUME, "emptyDir": {"sizeLimit": "512Mi"}} in pod["volumes"]


def test_v2_serves_onnx_on_a_gpu_triton_server():
    kinds = by_kind(GPU_V2)
    assert "SeldonDeployment" not in kinds
    model, server = kinds["Model"], kinds["Server"]
    assert model["spec"]["requirements"] == ["onnx"] and model["spec"]["server"] == "auscult-triton"
    assert model["spec"]["storageUri"].endswith("/triton/v0003-0123456789ab")
    assert server["spec"]["serverConfig"] == "triton"
    assert server["spec"]["podSpec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert server["spec"]["podSpec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_cpu_values_drop_gpu_placement():
    pod = by_kind(CPU_V1)["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert "nodeSelector" not in pod and "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert {"CronJob", "Job"}.isdisjoint(by_kind(CPU_V1))


def test_values_schema_rejects_mistakes():
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).render({"seldon": {"version": "v3"}}, name="auscult", namespace="x")
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).render({"objectStore": {"bucket": "Bad_Bucket"}}, name="auscult", namespace="x")
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).render(
            {"seldon": {"telemetrySpool": {"sizeLimit": "lots"}}}, name="auscult", namespace="x"
        )
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).render({"feedbackSecret": ""}, name="auscult", namespace="x")


def test_v2_without_a_version_fails_with_a_reason():
    with pytest.raises(helm.HelmError, match="modelVersion is required"):
        helm.Chart.load(CHART).render({"seldon": {"version": "v2"}}, name="auscult", namespace="x")


def test_notes_tell_the_user_what_to_do_next():
    notes = helm.Chart.load(CHART).render(None, name="auscult", namespace="screening", is_install=True)[
        "auscult/templates/NOTES.txt"
    ]
    assert "create secret generic auscult-object-store" in notes
    assert "create secret generic auscult-feedback-key" in notes
    assert "create secret generic auscult-pseudonym-key" in notes
    assert "helm test auscult -n screening" in notes
    assert "Create run" in notes


@pytest.mark.parametrize("values", [None, GPU_V2], ids=["default", "gpu-v2"])
def test_every_workload_runs_read_only_and_the_predictor_has_no_token(values):
    """Each container of the chart's own workloads has a read-only root filesystem (with /tmp an emptyDir); the
    Triton server runs Seldon's image as that image needs, without privilege escalation or capabilities. The
    predictor and the training workers run under service accounts bound to no Role, without a token."""
    rendered = objects(values)
    accounts = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "ServiceAccount"}
    bound = {s["name"] for o in rendered if o["kind"] == "RoleBinding" for s in o["subjects"]}
    for account in (contract.PREDICTOR_SERVICE_ACCOUNT, TRAINER_SERVICE_ACCOUNT):
        assert accounts[account]["automountServiceAccountToken"] is False
        assert account not in bound
    for obj in rendered:
        pod = pod_spec(obj)
        if pod is None:
            continue
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
            if obj["kind"] == "Server":
                assert pod["serviceAccountName"] == contract.PREDICTOR_SERVICE_ACCOUNT
                assert pod["automountServiceAccountToken"] is False
                continue
            assert security["readOnlyRootFilesystem"] is True, f"{obj['kind']} {container['name']}"
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert {"name": mounts[contract.SCRATCH_PATH], "emptyDir": {}} in pod["volumes"]


def pod_spec(obj: dict) -> dict | None:
    """The pod template of a workload the chart renders, None for other objects."""
    spec = obj.get("spec", {})
    return {
        "Pod": lambda: spec,
        "Job": lambda: spec["template"]["spec"],
        "CronJob": lambda: spec["jobTemplate"]["spec"]["template"]["spec"],
        "SeldonDeployment": lambda: spec["predictors"][0]["componentSpecs"][0]["spec"],
        "Server": lambda: spec["podSpec"],
    }.get(obj["kind"], lambda: None)()
