"""Compile the pipelines to KFP IR YAML, the file a person uploads in the KFP UI."""

from __future__ import annotations

from pathlib import Path

import yaml
from kfp import compiler

from pipelines.training import monitor_pipeline, training_pipeline


def compile_pipelines(folder: str | Path, image: str | None = None) -> list[Path]:
    """Write ``auscult-training.yaml`` and ``auscult-monitor.yaml``; ``image`` replaces every task's image."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pipeline, name in ((training_pipeline, "auscult-training.yaml"), (monitor_pipeline, "auscult-monitor.yaml")):
        target = folder / name
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(target))
        if image:
            # The image is fixed when a component is defined; a build's tag is known only now.
            spec = yaml.safe_load(target.read_text())
            for executor in spec["deploymentSpec"]["executors"].values():
                executor["container"]["image"] = image
            target.write_text(yaml.safe_dump(spec, sort_keys=False))
        written.append(target)
    return written
