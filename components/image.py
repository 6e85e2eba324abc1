"""The container images components run in on a cluster. They carry kfp and auscult, so tasks install
nothing at start-up (clusters often have no route to PyPI). Training runs in the CUDA image; every other
task in the CPU runtime image. Names follow ``contract.image_ref`` (AUSCULT_IMAGE_REGISTRY and
AUSCULT_IMAGE_TAG move all three at compile time); AUSCULT_IMAGE, AUSCULT_TRAINING_IMAGE and
AUSCULT_SERVING_IMAGE replace one."""

import os

from auscult.serving import contract

IMAGE = os.environ.get("AUSCULT_IMAGE") or contract.image_ref("runtime")
TRAINING_IMAGE = os.environ.get("AUSCULT_TRAINING_IMAGE") or contract.image_ref("training")
SERVING_IMAGE = os.environ.get("AUSCULT_SERVING_IMAGE") or contract.image_ref("serving")
