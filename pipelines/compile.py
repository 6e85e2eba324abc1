"""Compile the pipelines to KFP IR YAML, the file a person uploads in the KFP UI."""

from __future__ import annotations

from pathlib import Path

import yaml
from kfp import compiler

from pipelines.placement import Placement
from pipelines.training import DEFAULT_PLACEMENT, build_monitor_pipeline, build_training_pipeline


def load(path: str | Path) -> tuple[dict, dict]:
    """(pipeline spec, platform spec) of a compiled file: Kubernetes settings live in a second document."""
    documents = list(yaml.safe_load_all(Path(path).read_text()))
    return documents[0], (documents[1] if len(documents) > 1 else {})


def compile_pipelines(
    folder: str | Path, image: str | None = None, placement: Placement = DEFAULT_PLACEMENT
) -> list[Path]:
    """Write ``auscult-training.yaml`` and ``auscult-monitor.yaml``; ``image`` replaces every task's image."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    pipelines = (
        (build_training_pipeline(placement), "auscult-training.yaml"),
        (build_monitor_pipeline(placement), "auscult-monitor.yaml"),
    )
    for pipeline, name in pipelines:
        target = folder / name
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(target))
        if image:
            # The image is fixed when a component is defined; a build's tag is known only now.
            spec, platform = load(target)
            for executor in spec["deploymentSpec"]["executors"].values():
                executor["container"]["image"] = image
            target.write_text(yaml.safe_dump_all([spec, platform] if platform else [spec], sort_keys=False))
        written.append(target)
    return written
