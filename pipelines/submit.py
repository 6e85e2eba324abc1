"""Submit to a Kubeflow Pipelines API: upload the compiled pipeline as a new version of the same pipeline,
start a run, and optionally schedule the monitor pipeline. ``dry_run`` says what would be sent."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.compile import Images, compile_pipelines
from pipelines.placement import Placement
from pipelines.training import DEFAULT_PLACEMENT, MONITOR_PIPELINE_NAME, PIPELINE_NAME

EXPERIMENT = "auscult"


@dataclass(frozen=True)
class Submission:
    host: str
    arguments: dict = field(default_factory=dict)  # pipeline parameters (store_uri, sources, epochs, ...)
    run: bool = True
    monitor_schedule: str | None = None  # cron, e.g. "0 3 * * *"
    images: Images = Images()
    placement: Placement = DEFAULT_PLACEMENT
    version: str = field(default_factory=lambda: datetime.now(UTC).strftime("v%Y%m%d-%H%M%S"))


def plan(submission: Submission) -> list[str]:
    """What ``submit`` will do, in words."""
    steps = [f"upload {PIPELINE_NAME}.yaml to {submission.host} as version {submission.version} of '{PIPELINE_NAME}'"]
    if submission.run:
        steps.append(f"start a run in experiment '{EXPERIMENT}' with {submission.arguments}")
    if submission.monitor_schedule:
        steps.append(
            f"upload '{MONITOR_PIPELINE_NAME}' version {submission.version} and schedule it "
            f"'{submission.monitor_schedule}' with store_uri={submission.arguments.get('store_uri')}"
        )
    return steps


def _upload(client, path: Path, name: str, version: str) -> tuple[str, str]:
    """(pipeline id, version id): a new pipeline the first time, a new version of it after that."""
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(path), pipeline_name=name, description=f"auscult {version}")
        pipeline_id = pipeline.pipeline_id
        versions = client.list_pipeline_versions(pipeline_id=pipeline_id, page_size=1)
        return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    created = client.upload_pipeline_version(str(path), pipeline_version_name=version, pipeline_id=pipeline_id)
    return pipeline_id, created.pipeline_version_id


def _experiment_id(client) -> str:
    try:
        return client.get_experiment(experiment_name=EXPERIMENT).experiment_id
    except ValueError:  # kfp raises ValueError when no experiment has that name
        return client.create_experiment(EXPERIMENT).experiment_id


def submit(submission: Submission, client_factory: Callable[..., object] | None = None) -> dict[str, str]:
    """Do what ``plan`` says against the KFP API; return the ids it created."""
    if client_factory is None:
        from kfp import Client as client_factory
    client = client_factory(host=submission.host)
    created: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        training_path, monitor_path = compile_pipelines(folder, submission.images, submission.placement)
        created["pipeline_id"], created["version_id"] = _upload(
            client, training_path, PIPELINE_NAME, submission.version
        )
        if submission.run or submission.monitor_schedule:
            created["experiment_id"] = _experiment_id(client)
        if submission.run:
            run = client.run_pipeline(
                experiment_id=created["experiment_id"],
                job_name=f"{PIPELINE_NAME} {submission.version}",
                pipeline_id=created["pipeline_id"],
                version_id=created["version_id"],
                params=submission.arguments,
            )
            created["run_id"] = run.run_id
        if submission.monitor_schedule:
            monitor_id, monitor_version = _upload(client, monitor_path, MONITOR_PIPELINE_NAME, submission.version)
            recurring = client.create_recurring_run(
                experiment_id=created["experiment_id"],
                job_name=f"{MONITOR_PIPELINE_NAME} schedule",
                cron_expression=submission.monitor_schedule,
                pipeline_id=monitor_id,
                version_id=monitor_version,
                params={"store_uri": submission.arguments["store_uri"]},
                max_concurrency=1,
                no_catchup=True,
            )
            created["recurring_run_id"] = recurring.recurring_run_id
    return created
