"""deploy: register a blessed model in the object store, move the production pointer (keeping the previous
version for rollback), and render the cluster serving resource.

On one machine the local Seldon server reads the production pointer when it starts (``auscult serve``).
On a cluster the serving resource (Seldon Core v1 SeldonDeployment running the serving image, or Seldon
Core v2 Model served by Triton) is applied, awaited, and rolled back if it does not become available.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from auscult import __version__, layout
from auscult.audio import SAMPLE_RATE
from auscult.cluster import Cluster, RolloutError, roll_out
from auscult.pseudonym import PSEUDONYM_KEY_ENV, PSEUDONYM_SECRET
from auscult.registry import Registry
from auscult.serving import contract
from auscult.store import SECRET_KEYS
from auscult.task import CLASSES


@dataclass(frozen=True)
class ServingSpec:
    namespace: str = "auscult"
    image: str = f"auscult/serving:{__version__}"  # the same default as components.image.SERVING_IMAGE
    gpus: int = 1
    node_selector: dict[str, str] = field(default_factory=lambda: dict(contract.GPU_NODE_SELECTOR))
    tolerations: list[dict] = field(default_factory=lambda: [dict(t) for t in contract.GPU_TOLERATIONS])
    store_secret: str = contract.STORE_SECRET
    feedback_secret: str = contract.FEEDBACK_SECRET
    pseudonym_secret: str = PSEUDONYM_SECRET
    # The emptyDir holding the telemetry spool: above what the spool may hold (AUSCULT_TELEMETRY_SPOOL_MB), so
    # that a full spool answers 503 before the kubelet evicts the pod.
    spool_size_limit: str = "1Gi"
    service_account: str = contract.SERVICE_ACCOUNT
    replicas: int = 1


@dataclass
class Deployment:
    version: str
    previous: str | None
    manifest: dict


# The field of the feedback and pseudonym Secrets that holds the key.
KEY_FIELD = "key"


def _labels(version: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": contract.APP_NAME, "auscult.io/model-version": version}


def seldon_deployment(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v1 SeldonDeployment running the serving image on ``version``."""
    resources = copy.deepcopy(contract.RESOURCES)
    if spec.gpus:
        resources["limits"][contract.GPU_RESOURCE] = str(spec.gpus)
        resources["requests"][contract.GPU_RESOURCE] = str(spec.gpus)
    container = {
        "name": contract.CONTAINER,
        "image": spec.image,
        "imagePullPolicy": contract.IMAGE_PULL_POLICY,
        "securityContext": copy.deepcopy(contract.CONTAINER_SECURITY_CONTEXT),
        "env": [
            {"name": contract.ENV_STORE_URI, "value": store_uri},
            # Credentials for the object store come from a Secret, never from the manifest (in the order Helm
            # renders them: by key).
            *(
                {"name": env, "valueFrom": {"secretKeyRef": {"name": spec.store_secret, "key": key}}}
                for key, env in sorted(SECRET_KEYS.items())
            ),
            {"name": contract.ENV_MODEL_VERSION, "value": version},
            {
                "name": contract.ENV_ORT_THREADS,
                "valueFrom": {"resourceFieldRef": contract.ORT_THREADS_FROM_CPU_REQUEST},
            },
            # The launcher binds 127.0.0.1 unless told otherwise; in a pod, Seldon's orchestrator and the kubelet's
            # probes come from outside the container. The ports are the ones the operator sets.
            {"name": contract.ENV_HOST, "value": "0.0.0.0"},
            {"name": contract.ENV_TELEMETRY_SPOOL, "value": contract.SPOOL_PATH},
            {
                "name": contract.ENV_FEEDBACK_KEY,
                "valueFrom": {"secretKeyRef": {"name": spec.feedback_secret, "key": KEY_FIELD}},
            },
            {
                "name": PSEUDONYM_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": spec.pseudonym_secret, "key": KEY_FIELD}},
            },
        ],
        "resources": resources,
        "volumeMounts": [{"name": contract.SPOOL_VOLUME, "mountPath": contract.SPOOL_PATH}],
    }
    pod_spec: dict = {
        "serviceAccountName": spec.service_account,
        "securityContext": copy.deepcopy(contract.POD_SECURITY_CONTEXT),
        "containers": [container],
        # Telemetry not yet in the store survives a container restart here (not the loss of the pod).
        "volumes": [{"name": contract.SPOOL_VOLUME, "emptyDir": {"sizeLimit": spec.spool_size_limit}}],
    }
    if spec.gpus:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": contract.MODEL_NAME, "namespace": spec.namespace, "labels": _labels(version)},
        "spec": {
            "name": contract.MODEL_NAME,
            "predictors": [
                {
                    "name": contract.PREDICTOR,
                    "replicas": spec.replicas,
                    "componentSpecs": [{"spec": pod_spec}],
                    "graph": {"name": contract.CONTAINER, "type": "MODEL", "endpoint": {"type": "REST"}},
                    "labels": {"version": version},
                }
            ],
        },
    }


# An image build may name the commit it was built from; the package version otherwise.
CODE_VERSION_ENV = "AUSCULT_CODE_VERSION"


def model_card(metrics: dict, validation: list[str], table_bytes: bytes, code_version: str | None = None) -> dict:
    """What a registered version says about itself: its figures, its data, its code, its interface."""
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": code_version or os.environ.get(CODE_VERSION_ENV) or __version__,
        "data_table_sha256": hashlib.sha256(table_bytes).hexdigest(),
        "metrics": metrics,
        # Where the model says "positive": chosen on validation participants for a target specificity.
        "operating_point": {
            name: metrics.get(name)
            for name in (
                "threshold",
                "target_specificity",
                "sensitivity_at_target_specificity",
                "specificity_at_threshold",
            )
        },
        "validation": validation,
        # What the model can hear: the log-mel front end's upper edge (inside the graph), and whether training
        # varied the recording channel because the channel predicted the label.
        "front_end": {
            "f_max_hz": metrics.get("front_end_f_max_hz", SAMPLE_RATE / 2),
            "channel_augmentation": bool(metrics.get("channel_augmentation", 0.0)),
        },
        "input": {"name": "waveform", "sample_rate": SAMPLE_RATE, "channels": 1, "dtype": "float32"},
        "output": {"name": "probabilities", "classes": list(CLASSES)},
    }


def seldon_model(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v2 Model: Triton serves the registered ONNX (Open Inference Protocol)."""
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": contract.MODEL_NAME, "namespace": spec.namespace, "labels": _labels(version)},
        "spec": {
            "storageUri": f"{store_uri.rstrip('/')}/{layout.triton_model(contract.MODEL_NAME, version)}",
            "requirements": ["onnx"],
            "server": contract.TRITON_SERVER,
            "replicas": spec.replicas,
        },
    }


RENDERERS = {"seldon-v1": seldon_deployment, "seldon-v2": seldon_model}
TRITON_CONFIG = f"""name: "{contract.MODEL_NAME}"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [{{ name: "waveform", data_type: TYPE_FP32, dims: [ -1, -1 ] }}]
output [{{ name: "probabilities", data_type: TYPE_FP32, dims: [ -1, 2 ] }}]
instance_group [{{ kind: KIND_AUTO }}]
"""


def publish_for_triton(registry: Registry, version: str) -> str:
    """Triton's model-repository layout (config.pbtxt, 1/model.onnx) beside the registry entry."""
    base = layout.triton_model(contract.MODEL_NAME, version)
    registry.store.put_if_absent(f"{base}/{layout.TRITON_CONFIG_FILE}", TRITON_CONFIG.encode())
    registry.store.put_if_absent(f"{base}/1/{layout.ONNX_FILE}", registry.onnx(version))
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
