"""The Helm chart, through Helm's own engine (lint, schema, render), and what it renders, through the
Kubernetes schemas and the Seldon CRDs."""

from pathlib import Path

import helm_python as helm
import pytest

from auscult.stages.deploy import ServingSpec, seldon_deployment
from auscult.store import SECRET_KEYS
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
    role = by_kind()["Role"]
    groups = {group for rule in role["rules"] for group in rule["apiGroups"]}
    assert groups == {"machinelearning.seldon.io", "mlops.seldon.io"}
    assert all("delete" not in rule["verbs"] and "*" not in rule["verbs"] for rule in role["rules"])
    binding = by_kind()["RoleBinding"]
    assert binding["subjects"][0]["namespace"] == "screening"


def test_v1_serving_requests_gpus_on_gpu_nodes_with_secret_credentials():
    pod = by_kind()["SeldonDeployment"]["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    secret_env = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_env == set(SECRET_KEYS.values())
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_chart_and_pipeline_render_the_same_serving_contract():
    """The chart's SeldonDeployment and the deploy stage's must agree where a model swap relies on it."""
    chart = by_kind()["SeldonDeployment"]
    stage = seldon_deployment("v1", "s3://auscult/prod", ServingSpec())
    chart_pod = chart["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    stage_pod = stage["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert chart["metadata"]["name"] == stage["metadata"]["name"]
    assert chart["spec"]["predictors"][0]["graph"] == stage["spec"]["predictors"][0]["graph"]
    assert chart_pod["containers"][0]["name"] == stage_pod["containers"][0]["name"]
    assert chart_pod["nodeSelector"] == stage_pod["nodeSelector"]
    assert chart_pod["tolerations"] == stage_pod["tolerations"]
    assert {e["name"] for e in stage_pod["containers"][0]["env"]} <= {
        e["name"] for e in chart_pod["containers"][0]["env"]
    }
    # ONNX Runtime's threads follow the pod's CPU request, in both.
    for pod in (chart_pod, stage_pod):
        threads = next(e for e in pod["containers"][0]["env"] if e["name"] == "AUSCULT_ORT_THREADS")
        assert threads["valueFrom"]["resourceFieldRef"] == {
            "containerName": pod["containers"][0]["name"],
            "resource": "requests.cpu",
            "divisor": "1",
        }


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


def test_v2_without_a_version_fails_with_a_reason():
    with pytest.raises(helm.HelmError, match="modelVersion is required"):
        helm.Chart.load(CHART).render({"seldon": {"version": "v2"}}, name="auscult", namespace="x")


def test_notes_tell_the_user_what_to_do_next():
    notes = helm.Chart.load(CHART).render(None, name="auscult", namespace="screening", is_install=True)[
        "auscult/templates/NOTES.txt"
    ]
    assert "create secret generic auscult-object-store" in notes
    assert "helm test auscult -n screening" in notes
    assert "Create run" in notes
