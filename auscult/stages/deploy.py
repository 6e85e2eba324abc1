"""deploy: register a blessed model in the object store, move the production pointer (keeping the previous
version for rollback), and render the cluster serving resource.

On one machine the local Seldon server reads the production pointer when it starts (``auscult serve``).
On a cluster the rendered SeldonDeployment runs the serving image on a GPU node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auscult import __version__
from auscult.registry import Registry
from auscult.store import SECRET_KEYS

# Where GPU nodes are, by default: the label NVIDIA's GPU operator sets, and the taint clusters usually put
# on GPU nodes so that only GPU work lands there.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


@dataclass(frozen=True)
class ServingSpec:
    namespace: str = "auscult"
    image: str = f"auscult/serving:{__version__}"
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


def seldon_deployment(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v1 SeldonDeployment running the serving image on ``version``."""
    name = "auscult-screening"
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    if spec.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(spec.gpus)
        resources["requests"]["nvidia.com/gpu"] = str(spec.gpus)
    container = {
        "name": "classifier",
        "image": spec.image,
        "env": [
            {"name": "AUSCULT_STORE_URI", "value": store_uri},
            {"name": "AUSCULT_MODEL_VERSION", "value": version},
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
                    "graph": {"name": "classifier", "type": "MODEL", "endpoint": {"type": "REST"}},
                    "labels": {"version": version},
                }
            ],
        },
    }


def deploy(
    registry: Registry, onnx: bytes, card: dict, reference: dict, spec: ServingSpec = ServingSpec()
) -> Deployment:
    version = registry.register(onnx, card, reference)
    current = registry.production()
    if current and current["version"] == version:
        pointer = current
    else:
        pointer = registry.promote(version, reason="blessed by validation")
    return Deployment(version, pointer["previous"], seldon_deployment(version, registry.store.root, spec))
