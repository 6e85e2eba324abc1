"""Where tasks run on a cluster and how they get credentials: GPU nodes, Secrets, resources.

The local runner ignores all of this; it matters in the compiled YAML. Credentials always come from
Kubernetes Secrets, never from pipeline parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from auscult.pseudonym import PSEUDONYM_KEY_ENV, PSEUDONYM_SECRET
from auscult.serving import contract
from auscult.store import SECRET_KEYS as STORE_SECRET_KEYS
from auscult.training_job import TRAINER_SERVICE_ACCOUNT

PSEUDONYM_SECRET_KEYS = {"key": PSEUDONYM_KEY_ENV}


@dataclass(frozen=True)
class Placement:
    gpu_node_selector: dict[str, str] = field(default_factory=lambda: dict(contract.GPU_NODE_SELECTOR))
    gpu_tolerations: tuple[dict[str, str], ...] = contract.GPU_TOLERATIONS
    store_secret: str = contract.STORE_SECRET
    pseudonym_secret: str = PSEUDONYM_SECRET
    feedback_secret: str = contract.FEEDBACK_SECRET  # the predictor's
    service_account: str = contract.PREDICTOR_SERVICE_ACCOUNT  # the predictor's
    # At most this many shard tasks of a stage run at once (KFP fixes it when the pipeline is compiled).
    shard_parallelism: int = 8
    # "" trains in the train task's pod; "trainjob" (Kubeflow Trainer) or "pytorchjob" (the older training
    # operator) launches the training workers as a job of their own, which the train task watches.
    training_operator: str = ""
    training_service_account: str = TRAINER_SERVICE_ACCOUNT  # the chart's <serviceAccount>-trainer
    training_gpus_per_worker: int = 1
    training_timeout_s: int = 6 * 3600

    def launch(self) -> dict:
        """The train task's ``launch`` parameter: how it starts its workers on the cluster."""
        if not self.training_operator:
            return {"operator": ""}
        return {
            "operator": self.training_operator,
            "service_account": self.training_service_account,
            "store_secret": self.store_secret,
            "gpus_per_worker": self.training_gpus_per_worker,
            "node_selector": dict(self.gpu_node_selector) if self.training_gpus_per_worker else {},
            "tolerations": list(self.gpu_tolerations) if self.training_gpus_per_worker else [],
            "timeout_s": self.training_timeout_s,
        }


def on_gpu(task: dsl.PipelineTask, placement: Placement, gpus: int = 1) -> dsl.PipelineTask:
    task.set_accelerator_type(contract.GPU_RESOURCE).set_accelerator_limit(gpus)
    for key, value in placement.gpu_node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in placement.gpu_tolerations:
        kubernetes.add_toleration(task, **toleration)
    return task


def with_store(task: dsl.PipelineTask, placement: Placement) -> dsl.PipelineTask:
    """Object-store credentials from the Secret. No task retry: the store layer retries what is transient,
    and a task that failed on its input would fail the same way again, minutes later."""
    return kubernetes.use_secret_as_env(task, placement.store_secret, STORE_SECRET_KEYS)


def with_pseudonym_key(task: dsl.PipelineTask, placement: Placement) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(task, placement.pseudonym_secret, PSEUDONYM_SECRET_KEYS)


def sized(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    """Requests and limits on every task, so the scheduler can place it and a leak cannot take a node."""
    return task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
