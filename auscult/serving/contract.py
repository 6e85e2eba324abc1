"""The serving contract: what the predictor's pod, the deploy stage, the Helm chart and the kustomize base
agree on. The deploy stage renders from these values; the chart and the kustomize base are tested against
them field by field (``tests/charts``, ``tests/manifests``).

Constants only: the serving image imports this module without the pipeline's dependencies.
"""

from __future__ import annotations

# One name for the model everywhere: the registry entry, the SeldonDeployment, the Seldon v2 Model and the
# Triton model.
MODEL_NAME = "auscult-screening"
APP_NAME = "auscult"  # app.kubernetes.io/name of everything the project runs
PREDICTOR = "default"
CONTAINER = "classifier"  # Seldon v1 runs the graph node of the same name in this container
TRITON_SERVER = "auscult-triton"
MODEL_CLASS = "auscult.serving.seldon.AuscultModel"  # what seldon-core-microservice loads

# What the predictor reads from its environment.
ENV_STORE_URI = "AUSCULT_STORE_URI"  # the store holding the registry, receiving telemetry
ENV_MODEL_VERSION = "AUSCULT_MODEL_VERSION"  # empty or unset: the production version
ENV_ORT_THREADS = "AUSCULT_ORT_THREADS"  # ONNX Runtime's threads; on a cluster, the pod's CPU request

# seldon-core-microservice's REST port, which the Seldon operator also assumes.
HTTP_PORT = 9000

# Where it runs on a cluster.
STORE_SECRET = "auscult-object-store"  # endpoint, access-key, secret-key, secure
SERVICE_ACCOUNT = "auscult"
IMAGE_PULL_POLICY = "IfNotPresent"
RUN_AS = 10001  # the non-root user of every image
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
# ONNX Runtime would otherwise start a thread per core of the node, whatever the pod was given.
ORT_THREADS_FROM_CPU_REQUEST = {"containerName": CONTAINER, "resource": "requests.cpu", "divisor": "1"}

# Where GPU nodes are, by default: the label NVIDIA's GPU operator sets, and the taint clusters usually put
# on GPU nodes so that only GPU work lands there.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)
