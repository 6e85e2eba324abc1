"""A local HTTP server that speaks the few Kubernetes API calls a roll-out and a training job make, recording
them: server-side apply and get of Seldon resources (versions listed in ``failing`` never become available),
and server-side apply, get and delete of Kubeflow training jobs, which report the statuses scripted in
``job_statuses`` and are checked against their CRD's schema as the API server would."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from tests import fake_http
from tests.k8s import validate

TRAINING_PLURALS = ("trainjobs", "pytorchjobs")


@dataclass
class FakeKube:
    failing: set[str] = field(default_factory=set)
    ready_after: int = 2  # GETs before an object reports itself available
    # The status a training job reports at its first, second, ... GET; the last one repeats.
    job_statuses: list[dict] = field(default_factory=list)
    # What the operator would do with an applied training job (run its workers), if anything.
    on_apply: Callable[[dict], None] | None = None
    requests: list[dict] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)

    def handle(self, method: str, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict]:
        self.requests.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "content_type": content_type,
                "body": json.loads(body) if body else None,
            }
        )
        if method == "PATCH":
            if content_type != "application/apply-patch+yaml" or query.get("fieldManager") != ["auscult"]:
                return 415, {"kind": "Status", "message": "only server-side apply by auscult is expected"}
            if path.split("/")[-2] in TRAINING_PLURALS:
                try:
                    validate(json.loads(body))
                except AssertionError as error:
                    return 422, {"kind": "Status", "reason": "Invalid", "message": str(error)}
            self.objects[path] = json.loads(body)
            self.polls[path] = 0
            if self.on_apply and path.split("/")[-2] in TRAINING_PLURALS:
                self.on_apply(self.objects[path])
            return 200, self.objects[path]
        if path not in self.objects:
            return 404, {"kind": "Status", "reason": "NotFound", "message": f"{method} {path} not found"}
        if method == "DELETE":
            del self.objects[path]
            return 200, {"kind": "Status", "status": "Success"}
        if method == "GET" and path.split("/")[-2] in TRAINING_PLURALS:
            self.polls[path] += 1
            statuses = self.job_statuses or [{}]
            return 200, {**self.objects[path], "status": statuses[min(self.polls[path], len(statuses)) - 1]}
        if method == "GET":
            obj = dict(self.objects[path])
            self.polls[path] += 1
            version = obj["metadata"]["labels"]["auscult.io/model-version"]
            if version not in self.failing and self.polls[path] >= self.ready_after:
                if obj["kind"] == "SeldonDeployment":
                    obj["status"] = {"state": "Available"}
                else:
                    obj["status"] = {"conditions": [{"type": "ModelReady", "status": "True"}]}
            else:
                obj["status"] = {"state": "Creating"} if obj["kind"] == "SeldonDeployment" else {"conditions": []}
            return 200, obj
        return 405, {"kind": "Status", "message": f"{method} {path} is not served here"}

    def training_requests(self, method: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"].split("/")[-2] in TRAINING_PLURALS]


def condition(kind: str, reason: str = "", message: str = "") -> dict:
    return {
        "type": kind,
        "status": "True",
        "reason": reason or kind,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def job_status(kind: str, phase: str, workers: int = 2, reason: str = "", message: str = "") -> dict:
    """A status as the operator writes it for ``kind`` (TrainJob or PyTorchJob) in ``phase``: Pending, Running,
    Succeeded or Failed."""
    active = workers if phase == "Running" else 0
    if kind == "TrainJob":  # one child Job of ``workers`` pods; conditions only once it ends
        counts = {"name": "node", "ready": int(phase == "Running"), "active": int(bool(active))}
        counts |= {"succeeded": int(phase == "Succeeded"), "failed": int(phase == "Failed"), "suspended": 0}
        status: dict = {"jobsStatus": [counts]}
        if phase == "Succeeded":
            status["conditions"] = [condition("Complete", "JobSetCompleted", "jobset completed successfully")]
        if phase == "Failed":
            status["conditions"] = [condition("Failed", reason, message)]
        return status
    conditions = [condition("Created", "PyTorchJobCreated")]
    if phase != "Pending":
        conditions.append(condition("Running", "PyTorchJobRunning"))
    if phase in ("Succeeded", "Failed"):
        conditions[-1] = {**conditions[-1], "status": "False"}
        conditions.append(condition(phase, reason, message))
    replicas = {"Master": {"active": int(bool(active))}}
    if workers > 1:
        replicas["Worker"] = {"active": active - 1 if active else 0}
    if phase == "Succeeded":
        replicas = {name: {"succeeded": 1 if name == "Master" else workers - 1} for name in replicas}
    return {"conditions": conditions, "replicaStatuses": replicas}


def serve(api):
    return fake_http.serve(api.handle)
