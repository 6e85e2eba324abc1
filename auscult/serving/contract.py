"""The serving contract: what the predictor's pod, the deploy stage, the Helm chart and the kustomize base
agree on. The deploy stage renders from these values; the chart and the kustomize base are tested against
them field by field (``tests/charts``, ``tests/manifests``).

Constants and the image naming rule only: the serving image imports this module without the pipeline's
dependencies.
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
ENV_FEEDBACK_KEY = "AUSCULT_FEEDBACK_KEY"  # signs the request ids that feedback must present
ENV_TELEMETRY_SPOOL = "AUSCULT_TELEMETRY_SPOOL"  # the write-ahead spool's folder (an emptyDir on a cluster)
ENV_TELEMETRY_SPOOL_MB = "AUSCULT_TELEMETRY_SPOOL_MB"  # how much may wait there before requests get 503
ENV_TELEMETRY_MAX_OUTAGE_S = "AUSCULT_TELEMETRY_MAX_OUTAGE_S"  # how long the store may refuse writes before 503
# The server launcher's settings (auscult.serving.launcher); its ports are the ones the Seldon operator sets.
ENV_HOST = "AUSCULT_SERVING_HOST"  # bind address: 127.0.0.1 unless set (a pod sets 0.0.0.0)
ENV_CORS_ORIGINS = "AUSCULT_CORS_ORIGINS"  # comma-separated origins allowed to call from a browser; none unless set
ENV_WORKERS = "AUSCULT_SERVING_WORKERS"
ENV_HTTP_PORT = "PREDICTIVE_UNIT_HTTP_SERVICE_PORT"
ENV_METRICS_PORT = "PREDICTIVE_UNIT_METRICS_SERVICE_PORT"

# The project's images, one naming scheme for components, the deploy stage, the Makefile and the chart:
# REGISTRY/auscult-IMAGE:TAG, where IMAGE is runtime, training or serving and TAG the package version. A CPU
# variant of an image built for NVIDIA GPUs (training, serving) adds "-cpu" to the tag. Names are always
# qualified, so a locally built image resolves as it is (Podman would store "auscult-x" as localhost/auscult-x).
IMAGE_REGISTRY = "ghcr.io/auscult"
ENV_IMAGE_REGISTRY = "AUSCULT_IMAGE_REGISTRY"
ENV_IMAGE_TAG = "AUSCULT_IMAGE_TAG"
IMAGES = ("runtime", "training", "serving")


def image_ref(image: str, registry: str = "", tag: str = "", variant: str = "") -> str:
    """``registry/auscult-image:tag``, with ``-variant`` appended. Unless given, the registry is
    $AUSCULT_IMAGE_REGISTRY or IMAGE_REGISTRY, and the tag $AUSCULT_IMAGE_TAG or the package version."""
    import os

    from auscult import __version__

    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}: one of {', '.join(IMAGES)}")
    registry = registry or os.environ.get(ENV_IMAGE_REGISTRY) or IMAGE_REGISTRY
    tag = tag or os.environ.get(ENV_IMAGE_TAG) or __version__
    return f"{registry.rstrip('/')}/auscult-{image}:{tag}{'-' + variant if variant else ''}"


# The REST port the Seldon operator assumes, and the metrics port it scrapes.
HTTP_PORT = 9000
METRICS_PORT = 6000
SERVER_MODULE = "auscult.serving.launcher"  # python -m SERVER_MODULE starts the server

# Where it runs on a cluster.
STORE_SECRET = "auscult-object-store"  # endpoint, access-key, secret-key, secure
FEEDBACK_SECRET = "auscult-feedback-key"  # its "key" becomes ENV_FEEDBACK_KEY
SPOOL_VOLUME = "telemetry-spool"
SPOOL_PATH = "/var/spool/auscult"  # an emptyDir: survives a container restart, not the loss of the pod
# Every container runs with a read-only root filesystem: the temporary folder is an emptyDir (Python's and
# waitress's temporary files, the command line's logs, ONNX Runtime's caches under XDG_CACHE_HOME=/tmp/cache).
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
SERVICE_ACCOUNT = "auscult"  # the pipeline's tasks and the monitor: its Role may manage Seldon resources
# The predictor answers the internet: a service account of its own, bound to no Role, with no token mounted.
PREDICTOR_SERVICE_ACCOUNT = "auscult-predictor"
IMAGE_PULL_POLICY = "IfNotPresent"
RUN_AS = 10001  # the non-root user of every image
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
# ONNX Runtime would otherwise start a thread per core of the node, whatever the pod was given.
ORT_THREADS_FROM_CPU_REQUEST = {"containerName": CONTAINER, "resource": "requests.cpu", "divisor": "1"}

# Where GPU nodes are, by default: the label NVIDIA's GPU operator sets, and the taint clusters usually put
# on GPU nodes so that only GPU work lands there.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)
