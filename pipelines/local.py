"""Run the pipelines on one machine with KFP's local runner, and read back what each task produced."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from kfp import local

from pipelines.training import monitor_pipeline, training_pipeline


class _ShortLines(logging.Filter):
    """kfp.local logs every output in full (a ROC curve is hundreds of points): keep each line readable."""

    width = 240

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and len(record.msg) > self.width:
            lines = record.msg.splitlines()
            record.msg = "\n".join(line if len(line) <= self.width else line[: self.width] + " ..." for line in lines)
        return True


@dataclass
class TaskResult:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, object] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # output name -> local path


@dataclass
class RunResult:
    name: str
    folder: Path
    seconds: float
    tasks: dict[str, TaskResult]

    def parameter(self, task: str, name: str, default: object = None) -> object:
        return self.tasks[task].parameters.get(name, default) if task in self.tasks else default

    def artifact(self, task: str, name: str) -> str | None:
        return self.tasks[task].artifacts.get(name) if task in self.tasks else None


@dataclass(frozen=True)
class Workspace:
    """Where a local run keeps everything: the object store, the pipeline root, the pseudonym key."""

    root: Path

    @property
    def store_uri(self) -> str:
        return (self.root / "store").resolve().as_uri()

    @property
    def pipeline_root(self) -> Path:
        return self.root / "pipeline-root"

    def prepare(self) -> None:
        """Create the folders and a stable pseudonymisation key (a Secret's job on a cluster)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        key_file = self.root / "pseudonym.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        os.environ.setdefault("AUSCULT_PSEUDONYM_KEY", key_file.read_text().strip())
        # The local runner leaves temporary folders behind: keep them inside the workspace.
        os.environ["TMPDIR"] = str((self.root / "tmp").resolve())
        os.environ.setdefault("XDG_CACHE_HOME", str((self.root / "cache").resolve()))
        # Components name the cluster's runtime image; locally they run in this environment, as intended.
        warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
        root_logger = logging.getLogger()
        if not any(isinstance(f, _ShortLines) for f in root_logger.filters):
            root_logger.addFilter(_ShortLines())
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(self.pipeline_root.resolve()),
            raise_on_error=True,
        )


def read_run(folder: Path) -> dict[str, TaskResult]:
    tasks = {}
    for output in sorted(folder.glob("*/executor_output.json")):
        data = json.loads(output.read_text())
        task = TaskResult(output.parent.name, parameters=data.get("parameterValues", {}))
        for name, entry in data.get("artifacts", {}).items():
            artifact = entry["artifacts"][0]
            task.artifacts[name] = artifact["uri"]
            if name == "metrics":
                task.metrics = {k: v for k, v in artifact.get("metadata", {}).items() if isinstance(v, int | float)}
        tasks[task.name] = task
    return tasks


def _run(workspace: Workspace, pipeline, name: str, **arguments: object) -> RunResult:
    before = set(workspace.pipeline_root.glob(f"{name}-*")) if workspace.pipeline_root.exists() else set()
    started = time.perf_counter()
    pipeline(store_uri=workspace.store_uri, **arguments)
    seconds = time.perf_counter() - started
    (folder,) = set(workspace.pipeline_root.glob(f"{name}-*")) - before
    return RunResult(name, folder, seconds, read_run(folder))


def run_training(workspace: Workspace, sources: list[str], epochs: int, seed: int, min_auroc: float) -> RunResult:
    # One machine has no cluster to roll out on: the local Seldon server reads the registry instead.
    arguments = {"sources": sources, "epochs": epochs, "seed": seed, "min_auroc": min_auroc, "serving": "none"}
    return _run(workspace, training_pipeline, "auscult-training", **arguments)


def run_monitor(workspace: Workspace) -> RunResult:
    return _run(workspace, monitor_pipeline, "auscult-monitor")
