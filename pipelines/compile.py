"""Compile the pipelines to KFP IR YAML, the file a person uploads in the KFP UI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from kfp import compiler

from pipelines.placement import Placement
from pipelines.training import DEFAULT_PLACEMENT, build_monitor_pipeline, build_training_pipeline


def load(path: str | Path) -> tuple[dict, dict]:
    """(pipeline spec, platform spec) of a compiled file: Kubernetes settings live in a second document."""
    documents = list(yaml.safe_load_all(Path(path).read_text()))
    return documents[0], (documents[1] if len(documents) > 1 else {})


@dataclass(frozen=True)
class Images:
    """A build's images; None keeps the default a component was defined with."""

    runtime: str | None = None  # every task but training
    training: str | None = None  # the CUDA image of the train task
    serving: str | None = None  # the default of the serving_image run parameter


def compile_pipelines(
    folder: str | Path, images: Images = Images(), placement: Placement = DEFAULT_PLACEMENT
) -> list[Path]:
    """Write ``auscult-training.yaml`` and ``auscult-monitor.yaml`` with ``images`` and ``placement``."""
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
        if images != Images():
            # The image is fixed when a component is defined; a build's tag is known only now.
            spec, platform = load(target)
            for name, executor in spec["deploymentSpec"]["executors"].items():
                replacement = images.training if name == "exec-train" else images.runtime
                executor["container"]["image"] = replacement or executor["container"]["image"]
            parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
            if images.serving and "serving_image" in parameters:
                parameters["serving_image"]["defaultValue"] = images.serving
            # The training job's workers run the train task's image.
            if images.training and "training_image" in parameters:
                parameters["training_image"]["defaultValue"] = images.training
            target.write_text(yaml.safe_dump_all([spec, platform] if platform else [spec], sort_keys=False))
        written.append(target)
    return written
