"""One KFP component per lifecycle stage: adapt artifacts and parameters, call ``auscult``, log metrics.

Every component runs in the project's runtime image, train in the training image (``components.image``); on
one machine KFP's local runner runs the same functions in the current environment.
"""

from components.curate import curate, measure
from components.deploy import deploy
from components.ingest import ingest
from components.label import label
from components.monitor import monitor
from components.prep import prep, prep_shard
from components.report import run_report
from components.shards import plan_shards
from components.train import train
from components.validate import validate

__all__ = [
    "ingest",
    "plan_shards",
    "measure",
    "curate",
    "label",
    "prep_shard",
    "prep",
    "train",
    "validate",
    "deploy",
    "monitor",
    "run_report",
]
