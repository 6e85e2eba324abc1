"""Cost growth: per-stage wall time and peak memory of the training pipeline at growing cohort sizes."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from auscult import synth
from pipelines.console import Console
from pipelines.local import run_training
from pipelines.workspace import Workspace

STAGES = ("ingest", "curate", "label", "prep", "train", "validate", "deploy")


def run(sizes: tuple[int, ...] = (200, 800, 3200), epochs: int = 5) -> dict:
    """``sizes`` in recordings (4 per participant). Fewer epochs than the default keep the run short."""
    figures: dict = {"epochs": epochs, "sizes": list(sizes), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="auscult-growth-", dir="/tmp") as folder:
        for size in sizes:
            cohort = Path(folder) / f"cohort-{size}"
            synth.generate(cohort, synth.CohortSpec(participants=size // len(synth.SOUNDS), seed=size))
            # Flush the generated files first: otherwise ingest's own writes queue behind their writeback, and
            # its time measures the page cache, not ingest (seen here: 85% of ingest's time in open()).
            os.sync()
            workspace = Workspace(Path(folder) / f"run-{size}")
            workspace.prepare()
            with Console(workspace.root / "logs" / "run.log", terminal=io.StringIO()) as console:
                result = run_training(
                    workspace,
                    console,
                    [str(cohort)],
                    epochs=epochs,
                    seed=0,
                    min_auroc=0.0,
                    min_participants_per_class=1,
                )
            for stage in STAGES:
                metrics = result.tasks[stage].metrics if stage in result.tasks else {}
                entry = figures["stages"].setdefault(stage, {"wall_s": [], "peak_rss_mib": []})
                entry["wall_s"].append(metrics.get("wall_s"))
                entry["peak_rss_mib"].append(metrics.get("peak_rss_mib"))
    if len(sizes) > 1:
        logs = np.log(np.asarray(sizes, dtype=float))
        for entry in figures["stages"].values():
            times = np.asarray([t if t else np.nan for t in entry["wall_s"]], dtype=float)
            usable = np.isfinite(times) & (times > 0.05)
            x, y = logs[usable], np.log(times[usable])
            # The exponent k of time ~ size^k (1 is linear): the least-squares slope over every size, which one
            # noisy point moves less, and the slope between the two largest sizes, which fixed costs bias less.
            enough = usable.sum() >= 2
            entry["growth_exponent"] = float(np.polyfit(x, y, 1)[0]) if enough else None
            entry["growth_exponent_largest"] = float((y[-1] - y[-2]) / (x[-1] - x[-2])) if enough else None
        exponents = {s: e["growth_exponent"] for s, e in figures["stages"].items() if e["growth_exponent"] is not None}
        figures["fastest_growing_stage"] = max(exponents, key=exponents.get) if exponents else None
    return figures
