"""Roll a serving resource out on Kubernetes: server-side apply, wait until Seldon reports it available,
and roll back to the previous production version when it does not become available in time. The same
calls launch training jobs (auscult.training_job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELD_MANAGER = "auscult"
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# apiVersion -> the resource's plural: the Seldon kinds we deploy, the Kubeflow training jobs we launch.
PLURALS = {
    "machinelearning.seldon.io/v1": "seldondeployments",
    "mlops.seldon.io/v1alpha1": "models",
    "trainer.kubeflow.org/v1alpha1": "trainjobs",
    "kubeflow.org/v1": "pytorchjobs",
}


class RolloutError(RuntimeError):
    """The new version did not become available; production was rolled back (the message says to what)."""


@dataclass
class Cluster:
    api_client: Any  # kubernetes.client.ApiClient
    namespace: str

    @classmethod
    def from_environment(cls, namespace: str = "") -> Cluster:
        """In a pod: its service account and, unless ``namespace`` is given, its own namespace; elsewhere:
        the current kubeconfig context."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
            namespace = namespace or Path(POD_NAMESPACE_FILE).read_text().strip()
        except config.ConfigException:
            config.load_kube_config()
            namespace = namespace or config.list_kube_config_contexts()[1]["context"].get("namespace", "default")
        return cls(client.ApiClient(), namespace)

    def _path(self, manifest: dict) -> str:
        api_version = manifest["apiVersion"]
        return f"/apis/{api_version}/namespaces/{self.namespace}/{PLURALS[api_version]}/{manifest['metadata']['name']}"

    def apply(self, manifest: dict, strict: bool = False) -> dict:
        """Server-side apply (the API server merges, we own our fields). ``strict``: refuse fields the
        resource's schema does not know instead of dropping them, as an older operator's CRD would."""
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if strict:
            query.append(("fieldValidation", "Strict"))
        return self.api_client.call_api(
            self._path(manifest),
            "PATCH",
            query_params=query,
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

    def get(self, manifest: dict) -> dict:
        return self.api_client.call_api(
            self._path(manifest),
            "GET",
            header_params={"Accept": "application/json"},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

    def delete(self, manifest: dict) -> bool:
        """Delete the object and, in the background, what it owns (a job's pods); False if it was already gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api_client.call_api(
                self._path(manifest),
                "DELETE",
                query_params=[("propagationPolicy", "Background")],
                header_params={"Accept": "application/json"},
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


def is_available(obj: dict) -> bool:
    """Seldon v1: ``status.state == Available``; Seldon v2: a ``ModelReady`` or ``Ready`` condition that is True."""
    status = obj.get("status") or {}
    if obj.get("kind") == "SeldonDeployment":
        return status.get("state") == "Available"
    return any(
        c.get("type") in ("ModelReady", "Ready") and c.get("status") == "True" for c in status.get("conditions", [])
    )


def wait_available(
    cluster: Cluster, manifest: dict, timeout_s: float, poll_s: float = 5.0, sleep: Callable[[float], None] = time.sleep
) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if is_available(cluster.get(manifest)):
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(poll_s)


def roll_out(cluster: Cluster, manifest: dict, previous: dict | None, timeout_s: float, poll_s: float = 5.0) -> None:
    """Apply ``manifest``; if it is not available within ``timeout_s``, re-apply ``previous`` and raise."""
    cluster.apply(manifest)
    if wait_available(cluster, manifest, timeout_s, poll_s):
        return
    if previous is None:
        raise RolloutError(
            f"{manifest['kind']}/{manifest['metadata']['name']} did not become available in "
            f"{timeout_s:.0f} s, and there is no previous version to roll back to"
        )
    cluster.apply(previous)
    raise RolloutError(
        f"{manifest['kind']}/{manifest['metadata']['name']} did not become available in "
        f"{timeout_s:.0f} s; rolled back to the previous version"
    )
