"""A local HTTP server that speaks the part of the KFP v2beta1 REST API that ``auscult submit`` uses, and
records every request, so tests can assert on what was sent."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from tests import fake_http


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: bytes


@dataclass
class FakeKfp:
    requests: list[Recorded] = field(default_factory=list)
    pipelines: dict[str, dict] = field(default_factory=dict)  # id -> pipeline
    versions: dict[str, list[dict]] = field(default_factory=dict)  # pipeline id -> versions
    experiments: dict[str, dict] = field(default_factory=dict)

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def handle(self, method: str, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict]:
        self.requests.append(Recorded(method, path, query, body))
        prefix = "/apis/v2beta1"
        if method == "GET" and path == f"{prefix}/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == f"{prefix}/pipelines":
            wanted = _filter_value(query)
            found = [p for p in self.pipelines.values() if wanted in (None, p["display_name"])]
            return 200, {"pipelines": found, "total_size": len(found)}
        if method == "POST" and path == f"{prefix}/pipelines/upload":
            pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": query["name"][0]}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self.versions[pipeline["pipeline_id"]] = [self._version(pipeline["pipeline_id"], query["name"][0])]
            return 200, pipeline
        if method == "POST" and path == f"{prefix}/pipelines/upload_version":
            pipeline_id = query["pipelineid"][0]
            if pipeline_id not in self.pipelines:
                return 404, {"error": "no such pipeline"}
            version = self._version(pipeline_id, query["name"][0])
            self.versions[pipeline_id].append(version)
            return 200, version
        match = re.fullmatch(rf"{prefix}/pipelines/([^/]+)/versions", path)
        if method == "GET" and match:
            versions = list(reversed(self.versions.get(match.group(1), [])))
            return 200, {"pipeline_versions": versions, "total_size": len(versions)}
        if method == "GET" and path == f"{prefix}/experiments":
            wanted = _filter_value(query)
            found = [e for e in self.experiments.values() if wanted in (None, e["display_name"])]
            return 200, {"experiments": found, "total_size": len(found)}
        if method == "POST" and path == f"{prefix}/experiments":
            experiment = {"experiment_id": str(uuid.uuid4()), **json.loads(body)}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if method == "POST" and path == f"{prefix}/runs":
            return 200, {"run_id": str(uuid.uuid4()), **json.loads(body)}
        if method == "POST" and path == f"{prefix}/recurringruns":
            return 200, {"recurring_run_id": str(uuid.uuid4()), **json.loads(body)}
        return 404, {"error": f"{method} {path} is not part of this fake"}

    def _version(self, pipeline_id: str, name: str) -> dict:
        return {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": name}


def _filter_value(query: dict) -> str | None:
    """The string a KFP list filter compares display_name with, if any."""
    if "filter" not in query:
        return None
    predicates = json.loads(query["filter"][0]).get("predicates", [])
    return next((p.get("string_value") or p.get("stringValue") for p in predicates), None)


def serve(api):
    return fake_http.serve(api.handle)
