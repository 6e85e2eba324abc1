"""Follow the lineage record both ways: from a served request or a model version back to the run, the code and
the raw recordings it was trained on; from a recording forward to every run and model that used it, and every
deployment of those models. What ``auscult lineage`` prints and the deploy stage's summary shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from auscult import layout
from auscult.errors import InputError
from auscult.lineage import Lineage, who
from auscult.registry import Registry
from auscult.task import SPLITS


def _production_periods(registry: Registry, version: str) -> list[dict]:
    """Each time ``version`` went into production: when, why, and when it left."""
    pointers = [registry.store.get_json(k) for k in registry.store.list(layout.production_pointers(registry.name))]
    periods = []
    for position, pointer in enumerate(pointers):
        if pointer["version"] == version:
            until = pointers[position + 1]["updated_at"] if position + 1 < len(pointers) else None
            periods.append({"from": pointer["updated_at"], "until": until, "reason": pointer["reason"]})
    return periods


def _recordings(lineage: Lineage, ids: Iterable[str], split: str) -> list[dict]:
    found = []
    for recording_id in ids:
        origin = lineage.origin(recording_id) or {"source": None, "original_path": None, "participant_id": None}
        found.append({"recording_id": recording_id, "split": split, **origin})
    return found


def model_trace(registry: Registry, version: str, splits: Iterable[str] = ("train",)) -> dict:
    """A version: its run, code, data (the recordings of ``splits`` with where they came from), status and
    deployments."""
    if version not in registry.versions():
        raise InputError(f"there is no registered version {version!r} (registered: {registry.versions() or 'none'})")
    lineage = Lineage(registry.store)
    card = registry.card(version)
    run = card.get("lineage", {})
    kept = (lineage.membership(run["run_id"], "prep") if run else None) or {"members": {}}
    members = kept["members"]
    current = registry.production()
    return {
        "model": registry.name,
        "version": version,
        "onnx_sha256": card.get("onnx_sha256"),
        "in_production": bool(current and current["version"] == version),
        "status": registry.status(version),
        "trained_on_erased_data": registry.erasures(version),
        "run": run,
        "code": card.get("code", {}),
        "data": {
            **card.get("data", {}),
            "split_sizes": {split: len(members.get(split, [])) for split in SPLITS},
            "erased_from_splits": kept.get("erased", 0),
        },
        "recordings": [r for split in splits for r in _recordings(lineage, members.get(split, []), split)],
        "production": _production_periods(registry, version),
        "acts": [a for a in lineage.audit_trail() if a.get("subject", {}).get("version") == version],
    }


def request_trace(registry: Registry, request_id: str) -> dict:
    """A served request: the model version and run that answered it, then that model's trace."""
    suffix = f"/{request_id}.json"
    keys = [k for k in registry.store.list(layout.TELEMETRY_RECORDS) if k.endswith(suffix)]
    if not keys:
        raise InputError(f"no telemetry record of request {request_id!r} in {registry.store.root}")
    record = registry.store.get_json(keys[0])
    request = {
        "request_id": request_id,
        "received_at": record.get("received_at"),
        "model_version": record.get("model_version"),
        "model_run": record.get("model_run"),
        "probabilities": record.get("probabilities"),
        "telemetry": registry.store.uri(keys[0]),
    }
    return {"request": request, **model_trace(registry, record["model_version"])}


def recording_trace(registry: Registry, recording_id: str) -> dict:
    """A recording: where it came from, each run that took it in (and what it did with it), each model trained
    or tested on it, and each deployment of those models."""
    lineage = Lineage(registry.store)
    runs = []
    for run_id in lineage.runs():
        stages = {}
        ingest = lineage.members(run_id, "ingest")
        if recording_id in ingest.get("recordings", []):
            stages["ingest"] = "ingested"
        quarantined = lineage.members(run_id, "curate").get("quarantined", {})
        if recording_id in quarantined:
            stages["curate"] = f"quarantined: {quarantined[recording_id]}"
        prep = lineage.members(run_id, "prep")
        for split in SPLITS:
            if recording_id in prep.get(split, []):
                stages["prep"] = split
        if stages:
            name = next(kept["run"] for stage in stages if (kept := lineage.membership(run_id, stage)))
            runs.append({"run_id": run_id, "run": name, "stages": stages})
    used = {run["run_id"]: run for run in runs if "prep" in run["stages"]}
    models = []
    for version in registry.versions():
        run = registry.card(version).get("lineage", {})
        if run.get("run_id") in used:
            models.append(
                {
                    "version": version,
                    "run": run.get("run"),
                    "split": used[run["run_id"]]["stages"]["prep"],
                    "status": registry.status(version)["status"],
                    "production": _production_periods(registry, version),
                }
            )
    origin = lineage.origin(recording_id)
    if origin is None and not runs:
        raise InputError(f"the lineage record of {registry.store.root} names no recording {recording_id!r}")
    return {"recording_id": recording_id, "origin": origin, "runs": runs, "models": models}


def _periods(periods: list[dict], indent: str) -> list[str]:
    if not periods:
        return [f"{indent}never in production"]
    return [f"{indent}in production {p['from']} until {p['until'] or 'now'}: {p['reason']}" for p in periods]


def model_lines(trace: dict, recordings: int | None = 20) -> list[str]:
    """``trace`` (from :func:`model_trace`) as text; at most ``recordings`` recordings listed (None: all)."""
    run, code, data = trace["run"], trace["code"], trace["data"]
    lines = [
        f"model {trace['model']} {trace['version']} (onnx sha256 {trace['onnx_sha256']}): "
        + ("in production" if trace["in_production"] else trace["status"]["status"]),
        f"  trained by run {run.get('run', 'unknown')} (run id {run.get('run_id', 'unknown')})",
        f"  code: auscult {code.get('package')}, commit {code.get('commit') or 'unknown'}, "
        f"image {code.get('image') or 'none (local environment)'}"
        + (f" (build {code['image_build'][:12]})" if code.get("image_build") else ""),
        "  data: "
        + ", ".join(f"{n} {s} recordings" for s, n in data.get("split_sizes", {}).items())
        + "; training recordings by source: "
        + ", ".join(f"{s} {n}" for s, n in data.get("sources", {}).items()),
    ]
    for flag in trace["trained_on_erased_data"]:
        lines.append(f"  TRAINED ON ERASED DATA: erasure {flag['erasure']} at {flag['at']}: retrain without it")
    lines += _periods(trace["production"], "  ")
    for act in trace["acts"]:
        lines.append(f"  {act['time']} {act['action']} by {who(act['actor'])}: {act['reason']}")
    listed = trace["recordings"] if recordings is None else trace["recordings"][:recordings]
    if listed:
        lines.append(f"  raw recordings ({len(trace['recordings'])}; recording id, split, source, original path):")
    for r in listed:
        where = r["original_path"] or "(origin erased)"
        lines.append(f"    {r['recording_id']} {r['split']} {r['source'] or '-'} {where}")
    if listed and len(listed) < len(trace["recordings"]):
        lines.append(f"    ... {len(trace['recordings']) - len(listed)} more (--all lists every one, --json too)")
    return lines


def request_lines(trace: dict, recordings: int | None = 20) -> list[str]:
    request = trace["request"]
    return [
        f"request {request['request_id']} at {request['received_at']}: probabilities {request['probabilities']}",
        f"  answered by {request['model_version']} (telemetry: {request['telemetry']})",
        *model_lines(trace, recordings),
    ]


def recording_lines(trace: dict) -> list[str]:
    origin = trace["origin"]
    where = f"{origin['source']}: {origin['original_path']}" if origin else "origin erased or never recorded"
    lines = [f"recording {trace['recording_id']} ({where})"]
    lines += [
        f"  run {run['run']}: " + ", ".join(f"{stage} {what}" for stage, what in run["stages"].items())
        for run in trace["runs"]
    ]
    if not trace["models"]:
        lines.append("  no registered model was trained, tuned or tested on it")
    for model in trace["models"]:
        lines.append(f"  model {model['version']} ({model['status']}; run {model['run']}; its {model['split']} split)")
        lines += _periods(model["production"], "    ")
    return lines


def markdown(trace: dict) -> str:
    """A model's lineage as a KFP Markdown artifact."""
    return "## Lineage\n\n```\n" + "\n".join(model_lines(trace, recordings=0)) + "\n```\n"
