"""The container images components run in on a cluster. They carry kfp and auscult, so tasks install
nothing at start-up (clusters often have no route to PyPI). Training runs in the CUDA image; every other
task in the CPU runtime image."""

import os

from auscult import __version__

IMAGE = os.environ.get("AUSCULT_IMAGE", f"auscult/runtime:{__version__}")
TRAINING_IMAGE = os.environ.get("AUSCULT_TRAINING_IMAGE", f"auscult/training:{__version__}")
SERVING_IMAGE = os.environ.get("AUSCULT_SERVING_IMAGE", f"auscult/serving:{__version__}")
