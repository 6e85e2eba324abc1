"""A local HTTP server that speaks the few Kubernetes API calls a roll-out makes (server-side apply and
get of Seldon resources), recording them; versions listed in ``failing`` never become available."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests import fake_http


@dataclass
class FakeKube:
    failing: set[str] = field(default_factory=set)
    ready_after: int = 2  # GETs before an object reports itself available
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
            self.objects[path] = json.loads(body)
            self.polls[path] = 0
            return 200, self.objects[path]
        if method == "GET" and path in self.objects:
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
        return 404, {"kind": "Status", "message": f"{method} {path} not found"}


def serve(api):
    return fake_http.serve(api.handle)
