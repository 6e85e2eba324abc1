"""The container images components run in on a cluster. They carry kfp and auscult, so tasks install
nothing at start-up (clusters often have no route to PyPI). Training runs in the CUDA image; every other
task in the CPU runtime image. Names follow ``contract.image_ref``; at compile time, AUSCULT_IMAGE_REGISTRY
and AUSCULT_IMAGE_TAG move all three, AUSCULT_IMAGE, AUSCULT_TRAINING_IMAGE and AUSCULT_SERVING_IMAGE one."""

import os

from auscult.serving import contract


def _default(image: str) -> str:
    return contract.image_ref(
        image,
        registry=os.environ.get(contract.ENV_IMAGE_REGISTRY) or contract.IMAGE_REGISTRY,
        tag=os.environ.get(contract.ENV_IMAGE_TAG, ""),
    )


IMAGE = os.environ.get("AUSCULT_IMAGE") or _default("runtime")
TRAINING_IMAGE = os.environ.get("AUSCULT_TRAINING_IMAGE") or _default("training")
SERVING_IMAGE = os.environ.get("AUSCULT_SERVING_IMAGE") or _default("serving")
