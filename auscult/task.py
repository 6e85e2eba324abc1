"""The screening task: its classes, in the order of the model's outputs, and the evidence a verdict needs."""

CLASSES = ("negative", "positive")
# The oldest plausible age in years: ingest drops an older one from metadata, serving refuses it as a tag.
MAX_AGE = 120

# A model is blessed only when validation and test each hold this many participants of each class ...
MIN_PARTICIPANTS_PER_CLASS = 10
# ... and the lower bound of its test AUROC's 95% interval over participants reaches this.
MIN_AUROC = 0.80
# ... and it beats recording properties alone (a model that never listened) by this much, at the lower bound of
# the paired participant interval of the difference.
MIN_MARGIN_OVER_METADATA = 0.05
# ... and, with a model in production, its AUROC is no more than this below production's on the same test
# participants, at the lower bound of the paired interval.
MAX_REGRESSION = 0.02
SPLITS = ("train", "validation", "test")  # prep splits by participant into these
