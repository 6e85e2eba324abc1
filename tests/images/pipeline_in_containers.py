"""Run the training pipeline with KFP's DockerRunner: every task in its image, as the image's user.

    python -m tests.images.pipeline_in_containers WORKDIR COHORT

Run in a process of its own (KFP's local configuration is global, and components name their images at
import): DOCKER_HOST points at the engine's API, AUSCULT_IMAGE and AUSCULT_TRAINING_IMAGE at the images.
DockerRunner mounts the pipeline root only; the store and the source folder (read-only) are mounted at the
same paths, the pseudonym key comes as environment, and the root filesystem is read-only with /tmp a tmpfs,
as in a pod. The folders are made writable for uid 10001, which owns nothing on the host.
"""

import os
import sys
from pathlib import Path

from docker.types import Mount
from kfp import local

from auscult.pseudonym import PSEUDONYM_KEY_ENV

KEY = "e2e-test-key"  # with seed 1 and this cohort, the loop test's first model is blessed: deploy runs too


def main(workdir: Path, cohort: Path) -> None:
    os.umask(0)  # what KFP creates for each task's outputs, a container user that is not root can write
    store, root = workdir / "store", workdir / "pipeline-root"
    for folder in (store, root):
        folder.mkdir(mode=0o777, parents=True, exist_ok=True)
    runner = local.DockerRunner(
        mounts=[
            Mount(str(store), str(store), type="bind"),
            Mount(str(cohort), str(cohort), type="bind", read_only=True),
        ],
        environment={PSEUDONYM_KEY_ENV: KEY},
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": "rw,mode=1777"},
    )
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    from pipelines.training import training_pipeline

    training_pipeline(
        store_uri=store.as_uri(),
        sources=[str(cohort)],
        serving="none",
        epochs=10,
        seed=1,
        min_auroc=0.6,
        min_participants_per_class=3,
        min_margin_over_metadata=-1.0,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
