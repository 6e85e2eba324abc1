"""Cost growth: per-stage wall time and peak memory of the training pipeline at growing cohort sizes, unsharded
and with curate and prep fanned out over shards (each shard a task of its own, as on a cluster)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from auscult import synth
from pipelines.console import Console
from pipelines.local import RunResult, run_training
from pipelines.workspace import Workspace

STAGES = ("ingest", "curate", "label", "prep", "train", "validate", "deploy")
# The per-recording work of curate and prep is done by the shard tasks; the merge sees the whole table.
SHARD_TASKS = {"curate": "measure", "prep": "prep-shard"}


def _run(folder: Path, size: int, shards: int, epochs: int) -> RunResult:
    cohort = folder / f"cohort-{size}"
    if not cohort.exists():
        synth.generate(cohort, synth.CohortSpec(participants=size // len(synth.SOUNDS), seed=size))
        # Flush the generated files first: otherwise ingest's own writes queue behind their writeback, and its time
        # measures the page cache, not ingest (seen here: 85% of ingest's time in open()).
        os.sync()
    workspace = Workspace(folder / f"run-{size}-{shards}")
    workspace.prepare()
    with Console(workspace.root / "logs" / "run.log", terminal=io.StringIO()) as console:
        return run_training(
            workspace,
            console,
            [str(cohort)],
            epochs=epochs,
            seed=0,
            shards=shards,
            min_auroc=0.0,
            min_participants_per_class=1,
        )


def _exponents(sizes: list[int], entry: dict) -> None:
    logs = np.log(np.asarray(sizes, dtype=float))
    times = np.asarray([t if t else np.nan for t in entry["wall_s"]], dtype=float)
    if "per_epoch" in entry:
        times = np.asarray(entry["per_epoch"], dtype=float)
    usable = np.isfinite(times) & (times > 0.05)
    x, y = logs[usable], np.log(times[usable])
    # The exponent k of time ~ size^k (1 is linear): the least-squares slope over every size, which one noisy point
    # moves less, and the slope between the two largest sizes, which fixed costs bias less.
    enough = usable.sum() >= 2
    entry["growth_exponent"] = float(np.polyfit(x, y, 1)[0]) if enough else None
    entry["growth_exponent_largest"] = float((y[-1] - y[-2]) / (x[-1] - x[-2])) if enough else None


def run(
    sizes: tuple[int, ...] = (200, 800, 3200, 6400),
    epochs: int = 5,
    largest_epochs: int = 2,
    shards: int = 4,
    sharded_sizes: tuple[int, ...] = (800, 3200, 6400),
    one_shard: bool = True,
) -> dict:
    """``sizes`` in recordings (4 per participant); the largest trains ``largest_epochs`` (the figure kept is per
    epoch as well as whole). At ``sharded_sizes`` the pipeline runs again with ``shards`` shards and one epoch:
    the stage costs with shards are the shard tasks' total plus the merge, each shard's cost is kept. Without
    ``one_shard`` (a quick run) every size runs sharded, once."""
    figures: dict = {
        "epochs": [largest_epochs if size == max(sizes) else epochs for size in sizes],
        "sizes": list(sizes),
        "stages": {},
        "sharded": {"shards": shards, "sizes": [s for s in sharded_sizes if s in sizes], "stages": {}},
    }
    with tempfile.TemporaryDirectory(prefix="auscult-growth-", dir="/tmp") as scratch:
        folder = Path(scratch)
        for size, size_epochs in zip(sizes, figures["epochs"], strict=True):
            result = _run(folder, size, 1 if one_shard else shards, size_epochs)
            for stage in STAGES:
                metrics = result.tasks[stage].metrics if stage in result.tasks else {}
                entry = figures["stages"].setdefault(stage, {"wall_s": [], "peak_rss_mib": []})
                # Curate's and prep's work is in their (one) shard task; the stage is that and its merge.
                parts = [t.metrics for t in result.shard_tasks(SHARD_TASKS[stage])] if stage in SHARD_TASKS else []
                measured = [metrics, *parts] if metrics else []
                entry["wall_s"].append(round(sum(m.get("wall_s", 0.0) for m in measured), 2) if measured else None)
                entry["peak_rss_mib"].append(max(m.get("peak_rss_mib", 0.0) for m in measured) if measured else None)
            train = figures["stages"]["train"]
            train.setdefault("per_epoch", []).append((train["wall_s"][-1] or 0) / size_epochs)
            if size not in figures["sharded"]["sizes"]:
                continue
            if one_shard:
                result = _run(folder, size, shards, 1)
            for stage, task in SHARD_TASKS.items():
                parts = [t.metrics.get("wall_s", 0.0) for t in result.shard_tasks(task)]
                merge = result.tasks[stage].metrics.get("wall_s", 0.0) if stage in result.tasks else 0.0
                entry = figures["sharded"]["stages"].setdefault(
                    stage, {"shard_wall_s": [], "merge_wall_s": [], "total_wall_s": [], "shard_peak_rss_mib": []}
                )
                entry["shard_wall_s"].append(parts)
                entry["merge_wall_s"].append(merge)
                entry["total_wall_s"].append(sum(parts) + merge)
                entry["shard_peak_rss_mib"].append(
                    max((t.metrics.get("peak_rss_mib", 0.0) for t in result.shard_tasks(task)), default=0.0)
                )
    if len(sizes) > 1:
        for entry in figures["stages"].values():
            _exponents(figures["sizes"], entry)
        exponents = {s: e["growth_exponent"] for s, e in figures["stages"].items() if e["growth_exponent"] is not None}
        figures["fastest_growing_stage"] = max(exponents, key=exponents.get) if exponents else None
    return figures


# What the cost model assumes of a cluster: shard tasks of 2 cores (as the pipeline sizes them), this many at once
# (the pipeline's shard_parallelism), shards of DEFAULT_SHARD_SIZE recordings, and the training the pipeline runs.
MODEL_PARALLELISM = 50
MODEL_EPOCHS = 10
MODEL_WORKERS = 8
TASK_CORES = 2


def cost_model(figures: dict, recordings: tuple[int, ...] = (1_000_000, 10_000_000)) -> dict:
    """Pods, core-hours and wall time of one run at ``recordings``, extrapolated linearly from the per-recording
    costs measured at the largest size (the growth exponents say how far linear holds). Stages that are one pod
    (ingest, the merges, label, validate) are serial; the shard tasks run MODEL_PARALLELISM at once; training is
    MODEL_WORKERS data-parallel workers at the measured 2-core rate (ideal scaling: an upper bound on its speed)."""
    from auscult.shards import DEFAULT_SHARD_SIZE

    largest = figures["sizes"][-1]
    sharded = figures["sharded"]
    at = sharded["sizes"].index(max(sharded["sizes"]))
    sharded_size = sharded["sizes"][at]

    def per_recording(stage: str) -> float:
        return (figures["stages"][stage]["wall_s"][-1] or 0.0) / largest

    shard_cost = {s: sum(e["shard_wall_s"][at]) / sharded_size for s, e in sharded["stages"].items()}
    merge_cost = {s: e["merge_wall_s"][at] / sharded_size for s, e in sharded["stages"].items()}
    train_epoch = figures["stages"]["train"]["per_epoch"][-1] / largest
    model: dict = {
        "assumptions": {
            "parallelism": MODEL_PARALLELISM,
            "shard_size": DEFAULT_SHARD_SIZE,
            "epochs": MODEL_EPOCHS,
            "training_workers": MODEL_WORKERS,
            "task_cores": TASK_CORES,
            "measured_at": {"stages": largest, "shards": sharded_size},
        },
        "per_recording_s": {
            "ingest": per_recording("ingest"),
            "curate_shard": shard_cost.get("curate", 0.0),
            "curate_merge": merge_cost.get("curate", 0.0),
            "label": per_recording("label"),
            "prep_shard": shard_cost.get("prep", 0.0),
            "prep_merge": merge_cost.get("prep", 0.0),
            "train_epoch": train_epoch,
            "validate": per_recording("validate"),
        },
        "runs": [],
    }
    for n in recordings:
        shards = -(-n // DEFAULT_SHARD_SIZE)
        waves = -(-shards // MODEL_PARALLELISM)
        cost = model["per_recording_s"]
        wall = {
            "ingest": cost["ingest"] * n,
            "curate": waves * cost["curate_shard"] * DEFAULT_SHARD_SIZE + cost["curate_merge"] * n,
            "label": cost["label"] * n,
            "prep": waves * cost["prep_shard"] * DEFAULT_SHARD_SIZE + cost["prep_merge"] * n,
            "train": cost["train_epoch"] * n * MODEL_EPOCHS / MODEL_WORKERS,
            "validate": cost["validate"] * n,
        }
        core_s = {stage: seconds * TASK_CORES for stage, seconds in wall.items()}
        core_s["train"] = cost["train_epoch"] * n * MODEL_EPOCHS * TASK_CORES
        for stage in ("curate", "prep"):
            core_s[stage] = (cost[f"{stage}_shard"] + cost[f"{stage}_merge"]) * n * TASK_CORES
        model["runs"].append(
            {
                "recordings": n,
                "pods": 2 * shards + MODEL_WORKERS + 6,
                "core_hours": {stage: s / 3600 for stage, s in core_s.items()},
                "wall_hours": {stage: s / 3600 for stage, s in wall.items()},
                "training_windows": n * 2,  # audio.MAX_WINDOWS per recording at most
                "bound_by": max(wall, key=wall.get),
            }
        )
    return model
