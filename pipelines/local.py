"""Run the pipelines on one machine with KFP's local runner, and read back what each task produced."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.console import Console, StageFailed
from pipelines.training import monitor_pipeline, training_pipeline
from pipelines.workspace import Workspace

# The metrics worth a person's eye on a stage's line: what went in, what came out.
COUNT_KEYS = (
    "recordings",
    "duplicates",
    "conflicts",
    "missing_files",
    "refused",
    "quarantined",
    "usable",
    "labelled_usable",
    "review_queue",
    "negative_participants",
    "positive_participants",
    "train_windows",
    "test_windows",
    "training_windows",
    "best_epoch",
    "test_negative_participants",
    "test_positive_participants",
    "requests",
    "feedback_labels",
)


# How a person reads the shard tasks' lines: which stage's shard it is.
SHARD_TASK_NAMES = {"measure": "curate shard", "prep-shard": "prep shard"}


@dataclass
class TaskResult:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, object] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # output name -> local path

    def line(self, seconds: float | None = None) -> str:
        """The stage's line on the terminal and in the summary: its time and its counts."""
        seconds = self.metrics.get("wall_s", seconds if seconds is not None else float("nan"))
        counts = ", ".join(f"{k} {v:g}" for k, v in self.metrics.items() if k in COUNT_KEYS)
        return f"  {self.name:<10} {seconds:>6.1f} s  {counts}".rstrip()


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

    def shard_tasks(self, task: str) -> list[TaskResult]:
        """Every iteration of a task inside a ParallelFor (a curate or a prep shard), in iteration order."""
        found = self.folder.glob(f"for-loop-*-iteration-*/{task}/{EXECUTOR_OUTPUT}")
        return [read_task(path.parent) for path in sorted(found, key=lambda p: int(p.parts[-3].rsplit("-", 1)[1]))]


EXECUTOR_OUTPUT = "executor_output.json"  # what KFP's executor leaves in each task's folder


def read_task(folder: Path) -> TaskResult:
    data = json.loads((folder / EXECUTOR_OUTPUT).read_text())
    task = TaskResult(folder.name, parameters=data.get("parameterValues", {}))
    for name, entry in data.get("artifacts", {}).items():
        artifact = entry["artifacts"][0]
        task.artifacts[name] = artifact["uri"]
        if name == "metrics":
            task.metrics = {k: v for k, v in artifact.get("metadata", {}).items() if isinstance(v, int | float)}
    return task


def read_run(folder: Path) -> dict[str, TaskResult]:
    tasks = (read_task(output.parent) for output in sorted(folder.glob(f"*/{EXECUTOR_OUTPUT}")))
    return {task.name: task for task in tasks}


def _run(workspace: Workspace, console: Console, pipeline, name: str, **arguments: object) -> RunResult:
    """Run ``pipeline`` with the local runner, its output in the console's log; StageFailed when a task fails."""
    before = set(workspace.pipeline_root.glob(f"{name}-*")) if workspace.pipeline_root.exists() else set()

    def this_run() -> Path | None:
        new = set(workspace.pipeline_root.glob(f"{name}-*")) - before
        return new.pop() if len(new) == 1 else None

    shards_done: dict[str, int] = {}

    def finished(task: str, seconds: float) -> str:
        folder = this_run()
        if task not in SHARD_TASK_NAMES:
            found_here = folder is not None and (folder / task / EXECUTOR_OUTPUT).is_file()
            return read_task(folder / task).line(seconds) if found_here else TaskResult(task).line(seconds)
        # A shard task of a ParallelFor: the local runner runs its iterations in order, each in a folder of its own.
        iteration = shards_done[task] = shards_done.get(task, -1) + 1
        found = list(folder.glob(f"for-loop-*-iteration-{iteration}/{task}/{EXECUTOR_OUTPUT}")) if folder else []
        result = read_task(found[0].parent) if found else TaskResult(task)
        result.name = SHARD_TASK_NAMES.get(task, task) + f" {iteration + 1}"
        return result.line(seconds)

    started = time.perf_counter()
    with console.capturing(finished) as watcher:
        try:
            pipeline(store_uri=workspace.store_uri, **arguments)
        except RuntimeError:
            if watcher.failed is None:
                raise
    if watcher.failed is not None:
        raise StageFailed(*watcher.failed, console.log_path)
    return RunResult(name, this_run(), time.perf_counter() - started, read_run(this_run()))


def run_training(workspace: Workspace, console: Console, sources: list[str], **parameters: object) -> RunResult:
    """The training pipeline on ``sources`` with ``parameters`` (epochs, seed, min_auroc, ...)."""
    # One machine has no cluster to roll out on: the local Seldon server reads the registry instead.
    return _run(
        workspace, console, training_pipeline, "auscult-training", sources=sources, serving="none", **parameters
    )


def run_monitor(workspace: Workspace, console: Console) -> RunResult:
    return _run(workspace, console, monitor_pipeline, "auscult-monitor")
