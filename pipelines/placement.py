"""Where tasks run on a cluster and how they get credentials: GPU nodes, Secrets, retries, resources.

The local runner ignores all of this; it matters in the compiled YAML. Credentials always come from
Kubernetes Secrets, never from pipeline parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from auscult.stages.deploy import GPU_NODE_SELECTOR, GPU_TOLERATIONS
from auscult.store import SECRET_KEYS as STORE_SECRET_KEYS

PSEUDONYM_SECRET_KEYS = {"key": "AUSCULT_PSEUDONYM_KEY"}


@dataclass(frozen=True)
class Placement:
    gpu_node_selector: dict[str, str] = field(default_factory=lambda: dict(GPU_NODE_SELECTOR))
    gpu_tolerations: tuple[dict[str, str], ...] = GPU_TOLERATIONS
    store_secret: str = "auscult-object-store"
    pseudonym_secret: str = "auscult-pseudonym-key"


def on_gpu(task: dsl.PipelineTask, placement: Placement, gpus: int = 1) -> dsl.PipelineTask:
    task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
    for key, value in placement.gpu_node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in placement.gpu_tolerations:
        kubernetes.add_toleration(task, **toleration)
    return task


def with_store(task: dsl.PipelineTask, placement: Placement) -> dsl.PipelineTask:
    """Object-store credentials from the Secret, and retries: object-store I/O fails transiently."""
    kubernetes.use_secret_as_env(task, placement.store_secret, STORE_SECRET_KEYS)
    return task.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)


def with_pseudonym_key(task: dsl.PipelineTask, placement: Placement) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(task, placement.pseudonym_secret, PSEUDONYM_SECRET_KEYS)


def sized(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    """Requests and limits on every task, so the scheduler can place it and a leak cannot take a node."""
    return task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
