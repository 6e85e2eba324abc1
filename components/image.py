"""The container image every component runs in on a cluster."""

import os

from auscult import __version__

IMAGE = os.environ.get("AUSCULT_IMAGE", f"auscult/runtime:{__version__}")
