"""The train task's launch path on a cluster: the TrainJob and PyTorchJob it renders (against the operators'
CRDs), and apply, wait, fail and time out against a local server that speaks the Kubernetes API calls."""

import re

import pytest

from auscult.cluster import Cluster
from auscult.serving import contract
from auscult.training_job import (
    MAX_NAME,
    OPERATORS,
    ROLE_RULES,
    TRAINER_SERVICE_ACCOUNT,
    WORKER_MODULE,
    DistributedJob,
    TrainingJobError,
    describe,
    job_name,
    pytorch_job,
    run_job,
    train_job,
)
from tests.auscult.kube_api import job_status
from tests.k8s import validate

STORE_ENV = (
    {"name": "AUSCULT_STORE_URI", "value": "s3://auscult/prod"},
    {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "auscult-object-store", "key": "access-key"}}},
)
ARGS = ["--run-id", "run-1", "--epochs", "3"]
KINDS = {"trainjob": "TrainJob", "pytorchjob": "PyTorchJob"}
PATHS = {
    "trainjob": "/apis/trainer.kubeflow.org/v1alpha1/namespaces/screening/trainjobs/auscult-train-run-1",
    "pytorchjob": "/apis/kubeflow.org/v1/namespaces/screening/pytorchjobs/auscult-train-run-1",
}


def spec(**overrides) -> DistributedJob:
    fields = {"name": job_name("run-1"), "image": "ghcr.io/auscult/auscult-train:0.1.0", "module_args": ARGS}
    return DistributedJob(**{**fields, "workers": 4, "env": STORE_ENV, **overrides})


def gpu_spec() -> DistributedJob:
    placement = {"node_selector": contract.GPU_NODE_SELECTOR, "tolerations": contract.GPU_TOLERATIONS}
    return spec(gpus_per_worker=1, deadline_s=7200, **placement)


def pods(manifest: dict) -> list[tuple[dict, dict]]:
    """(pod spec, the training container with its resources) of each kind of pod the job runs."""
    if manifest["kind"] == "PyTorchJob":
        specs = [r["template"]["spec"] for r in manifest["spec"]["pytorchReplicaSpecs"].values()]
        return [(s, {**s["containers"][0]}) for s in specs]
    (patch,) = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = patch["template"]["spec"]["template"]["spec"]
    trainer = manifest["spec"]["trainer"]
    container = {**pod["containers"][0], **trainer, "resources": trainer["resourcesPerNode"]}
    return [(pod, container)]


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("job", [spec(), gpu_spec(), spec(workers=1)], ids=["cpu", "gpu", "one-worker"])
def test_the_rendered_job_passes_its_crd_schema(operator, job):
    manifest = OPERATORS[operator](job)
    assert manifest["kind"] == KINDS[operator]
    validate(manifest)


def test_the_schemas_refuse_a_field_the_operator_does_not_know():
    """Validation is as strict as the apply (fieldValidation=Strict): a misplaced override fails."""
    manifest = train_job(spec())
    manifest["spec"]["podTemplateOverrides"] = [{"targetJobs": [{"name": "node"}]}]  # Trainer v2.1's API
    with pytest.raises(AssertionError, match="podTemplateOverrides"):
        validate(manifest)
    manifest = pytorch_job(spec())
    manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["serviceAcountName"] = "typo"
    with pytest.raises(AssertionError, match="serviceAcountName"):
        validate(manifest)


def test_the_trainjob_runs_torchrun_over_the_worker_module_on_the_torch_runtime():
    manifest = train_job(spec())
    assert manifest["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    trainer = manifest["spec"]["trainer"]
    assert trainer["command"] + trainer["args"] == ["torchrun", "--module", WORKER_MODULE, *ARGS]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 1)
    assert "activeDeadlineSeconds" not in manifest["spec"]
    assert train_job(gpu_spec())["spec"]["activeDeadlineSeconds"] == 7200
    # The node container's env may only come through spec.trainer.env (the runtime refuses patched env).
    assert "env" not in pods(manifest)[0][0]["containers"][0]


def test_the_pytorchjob_runs_a_master_and_the_other_workers():
    manifest = pytorch_job(spec())
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    assert {name: r["replicas"] for name, r in replicas.items()} == {"Master": 1, "Worker": 3}
    assert {r["restartPolicy"] for r in replicas.values()} == {"Never"}
    container = replicas["Master"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch", "the container the operator gives MASTER_ADDR, RANK and WORLD_SIZE to"
    assert container["command"] + container["args"] == ["python", "-m", WORKER_MODULE, *ARGS]
    assert manifest["spec"]["runPolicy"] == {"backoffLimit": 0, "cleanPodPolicy": "Running"}
    assert pytorch_job(gpu_spec())["spec"]["runPolicy"]["activeDeadlineSeconds"] == 7200
    assert list(pytorch_job(spec(workers=1))["spec"]["pytorchReplicaSpecs"]) == ["Master"]


@pytest.mark.parametrize("operator", OPERATORS)
def test_cpu_workers_request_no_gpu_and_gpu_workers_one_each_on_gpu_nodes(operator):
    for pod, container in pods(OPERATORS[operator](spec())):
        assert container["resources"] == {"requests": {"cpu": "4", "memory": "16G"}, "limits": {"memory": "16G"}}
        assert "nodeSelector" not in pod and "tolerations" not in pod
    for pod, container in pods(OPERATORS[operator](gpu_spec())):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"] == contract.GPU_NODE_SELECTOR
        assert pod["tolerations"] == list(contract.GPU_TOLERATIONS)


@pytest.mark.parametrize("operator", OPERATORS)
def test_workers_run_under_their_service_account_with_the_store_env_locked_down(operator):
    for pod, container in pods(OPERATORS[operator](spec())):
        assert pod["serviceAccountName"] == TRAINER_SERVICE_ACCOUNT
        assert container["env"] == list(STORE_ENV)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {"name": mounts[contract.SCRATCH_PATH], "emptyDir": {}} in pod["volumes"]
    (pod, _), *_ = pods(OPERATORS[operator](spec(service_account="team-trainer")))
    assert pod["serviceAccountName"] == "team-trainer"


@pytest.mark.parametrize(
    "run_id",
    ["run-1", "0b7a4c5e-3f2d-4c1b-9a8e-7d6c5b4a3f2e", "Run_With.Odd/Chars", "x" * 200, "---", "RUN-1"],
)
def test_job_names_are_valid_dns_labels_and_distinct(run_id):
    name = job_name(run_id)
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= MAX_NAME <= 63
    assert DistributedJob(name=name, image="i", module_args=[], workers=1).name == name
    assert job_name(run_id + "a") != name and (run_id == "run-1") == (name == "auscult-train-run-1")


def test_an_invalid_job_is_refused_before_it_reaches_the_cluster():
    with pytest.raises(ValueError, match="DNS-1035"):
        spec(name="Train_1")
    with pytest.raises(ValueError, match="at least one worker"):
        spec(workers=0)
    with pytest.raises(ValueError, match="one GPU"):
        spec(gpus_per_worker=2)


class Clock:
    """Time that passes only when run_job sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(cluster: Cluster, operator: str, lines: list[str], job=None, timeout_s=600.0, clock=None) -> dict:
    clock = clock or Clock()
    manifest = OPERATORS[operator](job or spec())
    return run_job(cluster, manifest, timeout_s, poll_s=10, log=lines.append, sleep=clock.sleep, clock=clock)


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_job_is_applied_server_side_followed_and_returned_when_it_succeeds(kube, operator):
    api, cluster = kube
    kind, lines = KINDS[operator], []
    api.job_statuses = [{}, *[job_status(kind, "Running", workers=4)] * 3, job_status(kind, "Succeeded", workers=4)]
    final = run(cluster, operator, lines)
    validate(final)  # the fake's statuses are shaped as the operator's CRD says
    (patch,) = api.training_requests("PATCH")
    assert patch["path"] == PATHS[operator]
    assert patch["query"] == {"fieldManager": ["auscult"], "force": ["true"], "fieldValidation": ["Strict"]}
    assert patch["body"]["metadata"]["namespace"] == "screening"
    assert len(api.training_requests("GET")) == 5 and not api.training_requests("DELETE")
    # One line per change, not per poll.
    name = f"{kind}/auscult-train-run-1"
    if kind == "TrainJob":
        running, done = "Running (node: 1 active, 1 ready)", "Complete (node: 1 succeeded)"
    else:
        running = "Running (Master: 1 active; Worker: 3 active)"
        done = "Succeeded (Master: 1 succeeded; Worker: 3 succeeded)"
    assert lines == [f"{name}: applied in namespace screening", *(f"{name}: {s}" for s in ("Pending", running, done))]


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_failed_job_fails_the_task_with_the_operator_s_reason(kube, operator):
    api, cluster = kube
    kind, lines = KINDS[operator], []
    reason, message = ("FailedJobs", "jobset failed") if kind == "TrainJob" else ("PyTorchJobFailed", "Master failed")
    api.job_statuses = [job_status(kind, "Running"), job_status(kind, "Failed", reason=reason, message=message)]
    with pytest.raises(TrainingJobError, match=f"{kind}/auscult-train-run-1 failed: {reason}: {message}"):
        run(cluster, operator, lines)
    assert lines[-1].startswith(f"{kind}/auscult-train-run-1: Failed")
    assert not api.training_requests("DELETE"), "a failed job stays for its logs; the operator stopped its pods"


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_job_past_its_timeout_is_deleted_and_the_task_says_what_to_raise(kube, operator):
    api, cluster = kube
    api.job_statuses = [job_status(KINDS[operator], "Running")]
    clock = Clock()
    with pytest.raises(TrainingJobError, match=r"did not finish in 60 s and was deleted .* raise the train task's"):
        run(cluster, operator, [], job=gpu_spec(), timeout_s=60, clock=clock)
    (delete,) = api.training_requests("DELETE")
    assert delete["path"] == PATHS[operator] and delete["query"] == {"propagationPolicy": ["Background"]}
    assert not api.objects, "the job and, through it, its pods are gone"
    assert len(api.training_requests("GET")) == 7 and clock.now == 60
    assert not cluster.delete(OPERATORS[operator](spec())), "deleting what is gone is not an error"


def test_the_training_role_grants_exactly_the_verbs_run_job_uses(kube):
    """The chart's and the manifests' Role are tested against ROLE_RULES (tests/charts, tests/manifests)."""
    api, cluster = kube
    for operator in OPERATORS:
        with pytest.raises(TrainingJobError, match="did not finish"):
            run(cluster, operator, [], timeout_s=10)
    # The API server authorises a server-side apply that creates the object as both create and patch.
    verbs = {"PATCH": {"create", "patch"}, "GET": {"get"}, "DELETE": {"delete"}}
    used: dict[tuple[str, str], set[str]] = {}
    for request in api.requests:
        _, _, group, _, _, _, plural, _ = request["path"].split("/")
        used.setdefault((group, plural), set()).update(verbs[request["method"]])
    assert used == {(rule["apiGroups"][0], rule["resources"][0]): set(rule["verbs"]) for rule in ROLE_RULES}


def test_rendering_shares_nothing_with_the_contract():
    manifest = pytorch_job(spec())
    manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    assert contract.POD_SECURITY_CONTEXT["runAsUser"] == contract.RUN_AS
    assert manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["securityContext"]["runAsUser"] != 0


def test_a_job_the_api_server_refuses_fails_with_its_answer(kube):
    api, cluster = kube
    manifest = train_job(spec())
    manifest["spec"]["trainer"]["numNodes"] = "four"  # what a newer operator might refuse: the fake checks the CRD
    with pytest.raises(TrainingJobError, match="not accepted in namespace screening: 422"):
        run_job(cluster, manifest, 60, log=lambda line: None, sleep=lambda s: None)
    assert not api.training_requests("GET")


def test_a_job_deleted_by_someone_else_fails_the_task(kube):
    api, cluster = kube
    api.job_statuses = [job_status("PyTorchJob", "Running")]

    def sleep(seconds):
        api.objects.clear()  # kubectl delete pytorchjob, between two polls

    with pytest.raises(TrainingJobError, match="no longer exists"):
        run_job(cluster, pytorch_job(spec()), 60, log=lambda line: None, sleep=sleep)


def test_described_status_lines():
    assert describe({"kind": "TrainJob"}) == "Pending"
    deadline = job_status("TrainJob", "Failed", reason="DeadlineExceeded")
    assert describe({"status": deadline}) == "Failed (node: 1 failed)"
    suspended = {"status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    assert describe(suspended) == "Suspended"
    assert describe({"status": job_status("PyTorchJob", "Pending", workers=1)}) == "Created"
