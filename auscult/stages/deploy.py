"""deploy: register a blessed model in the object store, move the production pointer (keeping the previous
version for rollback), and render the cluster serving resource.

On one machine the local Seldon server reads the production pointer when it starts (``auscult serve``).
On a cluster the serving resource (Seldon Core v1 SeldonDeployment running the serving image, or Seldon
Core v2 Model served by Triton) is applied, awaited, and rolled back if it does not become available.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from auscult import __version__
from auscult.audio import SAMPLE_RATE
from auscult.cluster import Cluster, RolloutError, roll_out
from auscult.registry import Registry
from auscult.store import SECRET_KEYS
from auscult.task import CLASSES

# Where GPU nodes are, by default: the label NVIDIA's GPU operator sets, and the taint clusters usually put
# on GPU nodes so that only GPU work lands there.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


@dataclass(frozen=True)
class ServingSpec:
    namespace: str = "auscult"
    image: str = f"auscult/serving:{__version__}"  # the same default as components.image.SERVING_IMAGE
    gpus: int = 1
    node_selector: dict[str, str] = field(default_factory=lambda: dict(GPU_NODE_SELECTOR))
    tolerations: list[dict] = field(default_factory=lambda: [dict(t) for t in GPU_TOLERATIONS])
    store_secret: str = "auscult-object-store"
    replicas: int = 1


@dataclass
class Deployment:
    version: str
    previous: str | None
    manifest: dict


CONTAINER = "classifier"  # Seldon v1 runs the graph node of the same name in this container
ORT_THREADS_FROM_CPU_REQUEST = {"containerName": CONTAINER, "resource": "requests.cpu", "divisor": "1"}


def seldon_deployment(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v1 SeldonDeployment running the serving image on ``version``."""
    name = "auscult-screening"
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    if spec.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(spec.gpus)
        resources["requests"]["nvidia.com/gpu"] = str(spec.gpus)
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "env": [
            {"name": "AUSCULT_STORE_URI", "value": store_uri},
            {"name": "AUSCULT_MODEL_VERSION", "value": version},
            # ONNX Runtime would otherwise start a thread per core of the node, whatever the pod was given.
            {"name": "AUSCULT_ORT_THREADS", "valueFrom": {"resourceFieldRef": ORT_THREADS_FROM_CPU_REQUEST}},
            # Credentials for the object store come from a Secret, never from the manifest.
            *(
                {"name": env, "valueFrom": {"secretKeyRef": {"name": spec.store_secret, "key": key}}}
                for key, env in SECRET_KEYS.items()
            ),
        ],
        "resources": resources,
    }
    pod_spec: dict = {"containers": [container]}
    if spec.gpus:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": {"app.kubernetes.io/name": name, "auscult.io/model-version": version},
        },
        "spec": {
            "name": name,
            "predictors": [
                {
                    "name": "default",
                    "replicas": spec.replicas,
                    "componentSpecs": [{"spec": pod_spec}],
                    "graph": {"name": CONTAINER, "type": "MODEL", "endpoint": {"type": "REST"}},
                    "labels": {"version": version},
                }
            ],
        },
    }


def model_card(metrics: dict, validation: list[str], table_bytes: bytes, code_version: str | None = None) -> dict:
    """What a registered version says about itself: its figures, its data, its code, its interface."""
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": code_version or __version__,
        "data_table_sha256": hashlib.sha256(table_bytes).hexdigest(),
        "metrics": metrics,
        "validation": validation,
        "input": {"name": "waveform", "sample_rate": SAMPLE_RATE, "channels": 1, "dtype": "float32"},
        "output": {"name": "probabilities", "classes": list(CLASSES)},
    }


def seldon_model(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v2 Model: Triton serves the registered ONNX (Open Inference Protocol)."""
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": "auscult-screening",
            "namespace": spec.namespace,
            "labels": {"app.kubernetes.io/name": "auscult-screening", "auscult.io/model-version": version},
        },
        "spec": {
            "storageUri": f"{store_uri.rstrip('/')}/{TRITON_PREFIX}/{version}",
            "requirements": ["onnx"],
            "server": "auscult-triton",
            "replicas": spec.replicas,
        },
    }


RENDERERS = {"seldon-v1": seldon_deployment, "seldon-v2": seldon_model}
TRITON_PREFIX = "models/auscult-screening/triton"
TRITON_CONFIG = """name: "auscult-screening"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [{ name: "waveform", data_type: TYPE_FP32, dims: [ -1, -1 ] }]
output [{ name: "probabilities", data_type: TYPE_FP32, dims: [ -1, 2 ] }]
instance_group [{ kind: KIND_AUTO }]
"""


def publish_for_triton(registry: Registry, version: str) -> str:
    """Triton's model-repository layout (config.pbtxt, 1/model.onnx) beside the registry entry."""
    base = f"{TRITON_PREFIX}/{version}"
    registry.store.put_if_absent(f"{base}/config.pbtxt", TRITON_CONFIG.encode())
    registry.store.put_if_absent(f"{base}/1/model.onnx", registry.onnx(version))
    return registry.store.uri(base)


def deploy(
    registry: Registry,
    onnx: bytes,
    card: dict,
    reference: dict,
    spec: ServingSpec = ServingSpec(),
    target: str = "seldon-v1",
    cluster: Cluster | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
) -> Deployment:
    """Register, promote, render for ``target``; with a ``cluster``, roll out and roll back on failure."""
    render = RENDERERS[target]
    version = registry.register(onnx, card, reference)
    if target == "seldon-v2":
        publish_for_triton(registry, version)
    current = registry.production()
    pointer = (
        current if current and current["version"] == version else registry.promote(version, "blessed by validation")
    )
    manifest = render(version, registry.store.root, spec)
    if cluster is not None:
        previous = render(pointer["previous"], registry.store.root, spec) if pointer["previous"] else None
        try:
            roll_out(cluster, manifest, previous, timeout_s, poll_s)
        except RolloutError:
            if previous is not None:
                registry.rollback(f"{version} did not become available")
            raise
    return Deployment(version, pointer["previous"], manifest)
