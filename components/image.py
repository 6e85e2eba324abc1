"""The container image every component runs in on a cluster. It carries kfp and auscult, so tasks install
nothing at start-up (clusters often have no route to PyPI)."""

import os

from auscult import __version__

IMAGE = os.environ.get("AUSCULT_IMAGE", f"auscult/runtime:{__version__}")
