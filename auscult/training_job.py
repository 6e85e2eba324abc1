"""Data-parallel training on the cluster's Kubeflow training operator: render the job (a Kubeflow Trainer
``TrainJob`` on the torch-distributed runtime, or a training-operator v1 ``PyTorchJob``), apply it server-side,
follow its status into the log, and fail with the operator's reason.

Rendered for the API of Kubeflow Trainer v2.3 (``runtimePatches``; v2.0/v2.1 had ``podSpecOverrides`` /
``podTemplateOverrides`` instead) and of the training operator v1.9; tests/data/crds holds both CRDs. The
job is applied with strict field validation, so an operator whose CRD lacks a field refuses the job rather
than silently dropping, say, its service account.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from auscult.cluster import Cluster
from auscult.serving.contract import (
    CONTAINER_SECURITY_CONTEXT,
    GPU_RESOURCE,
    POD_SECURITY_CONTEXT,
    SCRATCH_PATH,
    SCRATCH_VOLUME,
)

WORKER_MODULE = "auscult.stages.train_worker"
# The workers' own service account: bound to no Role, no token mounted (chart and manifests create it).
TRAINER_SERVICE_ACCOUNT = "auscult-trainer"
LABELS = {"app.kubernetes.io/name": "auscult", "app.kubernetes.io/component": "training"}
# Names the operators build on: "<name>-node-0-<pod>" (JobSet) and "<name>-worker-<n>" (PyTorchJob) must stay
# DNS labels of at most 63 characters, so the job's own name is kept well below that.
MAX_NAME = 40
# TrainJob: the torch-distributed runtime's replicated job and container, and who owns our patch of them.
NODE = "node"
PATCH_MANAGER = "auscult.io/train-task"
# PyTorchJob: the container the operator gives MASTER_ADDR, RANK and WORLD_SIZE to.
PYTORCH_CONTAINER = "pytorch"
# What run_job does to these resources, and so all that the chart's and the manifests' training Role grant:
# server-side apply of a new job (create, patch), polling it by name (get), removing it past the timeout (delete).
VERBS = ["get", "create", "patch", "delete"]
ROLE_RULES = [
    {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"], "verbs": VERBS},
    {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": VERBS},
]


class TrainingJobError(RuntimeError):
    """The training job failed or did not finish in time; the message names it and says why."""


@dataclass(frozen=True)
class DistributedJob:
    name: str  # a DNS-1035 label: job_name(run_id)
    image: str
    module_args: list[str]  # after `-m auscult.stages.train_worker`
    workers: int  # pods, one training process each
    gpus_per_worker: int = 0  # 0: CPU workers (gloo); 1: one GPU each (NCCL)
    cpu: str = "4"
    memory: str = "16G"
    env: tuple[dict, ...] = ()  # Kubernetes EnvVars, e.g. the object store's from its Secret
    service_account: str = TRAINER_SERVICE_ACCOUNT
    node_selector: dict = field(default_factory=dict)
    tolerations: tuple[dict, ...] = ()
    runtime: str = "torch-distributed"  # the ClusterTrainingRuntime a TrainJob refers to
    # The operator ends the job after this long even when no one is left to delete it (the launching task
    # was killed): set it a little above run_job's timeout. None: no limit.
    deadline_s: int | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", self.name) or len(self.name) > MAX_NAME:
            raise ValueError(f"job name {self.name!r} is not a DNS-1035 label of at most {MAX_NAME} characters")
        if self.workers < 1:
            raise ValueError(f"a training job needs at least one worker, not {self.workers}")
        # One process per pod drives one device: further GPUs would be held and never used.
        if self.gpus_per_worker not in (0, 1):
            raise ValueError(f"each worker runs one process on at most one GPU, not {self.gpus_per_worker}")


def job_name(run_id: str, prefix: str = "auscult-train") -> str:
    """A valid job name that stays recognisable: the run id's readable start and, when it had to be cut or
    cleaned, a digest of the whole id so that two runs never share a job."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    name = f"{prefix}-{slug}"
    if slug == run_id and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    keep = MAX_NAME - len(prefix) - len(digest) - 2
    return "-".join(part for part in (prefix, slug[:keep].strip("-"), digest) if part)


def _resources(job: DistributedJob) -> dict:
    limits = {"memory": job.memory}
    if job.gpus_per_worker:
        limits[GPU_RESOURCE] = str(job.gpus_per_worker)
    return {"requests": {"cpu": job.cpu, "memory": job.memory}, "limits": limits}


def _placement(job: DistributedJob) -> dict:
    """The pod fields both operators take from us: who it runs as, where, and how it is locked down."""
    spec: dict = {
        "serviceAccountName": job.service_account,
        "securityContext": POD_SECURITY_CONTEXT,
        # The root filesystem is read-only: torchrun's logs, Python's and torch's caches go to /tmp.
        "volumes": [{"name": SCRATCH_VOLUME, "emptyDir": {}}],
    }
    if job.node_selector:
        spec["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        spec["tolerations"] = list(job.tolerations)
    return spec


def _container_hardening() -> dict:
    return {
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH}],
    }


def train_job(job: DistributedJob) -> dict:
    """Kubeflow Trainer: the runtime runs one indexed Job of ``workers`` pods and gives each the PET_* variables
    (nodes, node rank, master address and port) that torchrun reads; torchrun starts the worker module with
    RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set."""
    pod = _placement(job)
    pod["containers"] = [{"name": NODE, **_container_hardening()}]
    spec: dict = {
        "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime", "name": job.runtime},
        "trainer": {
            "image": job.image,
            "command": ["torchrun", "--module", WORKER_MODULE],
            "args": list(job.module_args),
            "env": list(job.env),
            "numNodes": job.workers,
            # Left unset, the runtime starts a process per CPU on CPU nodes.
            "numProcPerNode": 1,
            "resourcesPerNode": _resources(job),
        },
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {"replicatedJobs": [{"name": NODE, "template": {"spec": {"template": {"spec": pod}}}}]}
                    }
                },
            }
        ],
    }
    if job.deadline_s is not None:
        spec["activeDeadlineSeconds"] = job.deadline_s
    manifest = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": job.name, "labels": dict(LABELS)},
        "spec": spec,
    }
    return copy.deepcopy(manifest)  # shares nothing with the contract's constants or the caller's job


def pytorch_job(job: DistributedJob) -> dict:
    """Training operator v1: a Master and ``workers - 1`` Workers, each started as the worker module itself;
    the operator sets MASTER_ADDR (the master's Service), MASTER_PORT, RANK and WORLD_SIZE (no LOCAL_RANK)."""
    pod = _placement(job)
    pod["automountServiceAccountToken"] = False
    pod["containers"] = [
        {
            "name": PYTORCH_CONTAINER,
            "image": job.image,
            "command": ["python", "-m", WORKER_MODULE],
            "args": list(job.module_args),
            "env": list(job.env),
            "resources": _resources(job),
            **_container_hardening(),
        }
    ]
    template = {"metadata": {"labels": LABELS}, "spec": pod}

    def replicas(count: int) -> dict:
        # Static DDP cannot take a restarted member back: a failed pod fails the job, with its reason, at once.
        # Each replica gets its own copy, sharing nothing with the others or with the contract's constants.
        return {"replicas": count, "restartPolicy": "Never", "template": copy.deepcopy(template)}

    specs = {"Master": replicas(1)}
    if job.workers > 1:
        specs["Worker"] = replicas(job.workers - 1)
    # Running: the pods still running when the job ends (failed) are deleted, and their GPUs freed.
    run_policy: dict = {"backoffLimit": 0, "cleanPodPolicy": "Running"}
    if job.deadline_s is not None:
        run_policy["activeDeadlineSeconds"] = job.deadline_s
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": job.name, "labels": dict(LABELS)},
        "spec": {"runPolicy": run_policy, "pytorchReplicaSpecs": specs},
    }


OPERATORS: dict[str, Callable[[DistributedJob], dict]] = {"trainjob": train_job, "pytorchjob": pytorch_job}


def _true_conditions(obj: dict) -> list[dict]:
    return [c for c in (obj.get("status") or {}).get("conditions", []) if c.get("status") == "True"]


def describe(obj: dict) -> str:
    """One line for the log: the job's phase and what its pods (PyTorchJob) or child Jobs (TrainJob) do."""
    status = obj.get("status") or {}
    counts = sorted((status.get("replicaStatuses") or {}).items()) or [
        (j["name"], j) for j in status.get("jobsStatus", [])
    ]
    conditions = [c["type"] for c in _true_conditions(obj)]
    # Terminal conditions first; otherwise the latest one the operator set (PyTorchJob: Created, Running,
    # Restarting, Suspended). A TrainJob sets none while it runs: its child Jobs tell.
    phase = next((t for t in ("Failed", "Complete", "Succeeded") if t in conditions), None)
    if phase is None:
        phase = conditions[-1] if conditions else "Running" if any(c.get("active") for _, c in counts) else "Pending"
    detail = "; ".join(
        f"{name}: " + ", ".join(f"{c[k]} {k}" for k in ("active", "ready", "succeeded", "failed") if c.get(k))
        for name, c in counts
        if any(c.get(k) for k in ("active", "ready", "succeeded", "failed"))
    )
    return f"{phase} ({detail})" if detail else phase


def run_job(
    cluster: Cluster,
    manifest: dict,
    timeout_s: float,
    poll_s: float = 10.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Apply ``manifest``, log each change of its status, and return the finished object. A Failed condition
    raises with its reason and message; past ``timeout_s`` the job is deleted (its pods would hold their GPUs)
    and the error says so."""
    from kubernetes.client.exceptions import ApiException

    ref = f"{manifest['kind']}/{manifest['metadata']['name']}"
    try:
        cluster.apply(manifest, strict=True)
    except ApiException as error:
        raise TrainingJobError(
            f"{ref} was not accepted in namespace {cluster.namespace}: {error.status} {error.reason}: "
            f"{error.body} (is the operator that serves {manifest['apiVersion']} installed, and may this "
            "service account create and patch its jobs?)"
        ) from error
    log(f"{ref}: applied in namespace {cluster.namespace}")
    deadline = clock() + timeout_s
    last = ""
    while True:
        try:
            obj = cluster.get(manifest)
        except ApiException as error:
            if error.status == 404:
                raise TrainingJobError(f"{ref} no longer exists: it was deleted outside this task") from error
            if error.status != 429 and (error.status or 0) < 500:
                raise
            # The API server's hiccup must not end hours of training: read again at the next poll.
            log(f"{ref}: status not read ({error.status} {error.reason}); trying again")
        else:
            line = f"{ref}: {describe(obj)}"
            if line != last:
                log(line)
                last = line
            conditions = {c["type"]: c for c in _true_conditions(obj)}
            if "Failed" in conditions:
                failed = conditions["Failed"]
                raise TrainingJobError(f"{ref} failed: {failed.get('reason', '')}: {failed.get('message', '')}")
            if "Complete" in conditions or "Succeeded" in conditions:
                return obj
        if clock() >= deadline:
            cluster.delete(manifest)
            raise TrainingJobError(
                f"{ref} did not finish in {timeout_s:.0f} s and was deleted so that its pods free their GPUs; "
                "if training needs longer, raise the train task's timeout"
            )
        sleep(poll_s)
