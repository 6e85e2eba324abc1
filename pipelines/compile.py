"""Compile the pipelines to KFP IR YAML, the file a person uploads in the KFP UI."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from pipelines.training import monitor_pipeline, training_pipeline


def compile_pipelines(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pipeline, name in ((training_pipeline, "auscult-training.yaml"), (monitor_pipeline, "auscult-monitor.yaml")):
        target = folder / name
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(target))
        written.append(target)
    return written
