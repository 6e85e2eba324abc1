"""The screening task: its classes, in the order of the model's outputs."""

CLASSES = ("negative", "positive")
