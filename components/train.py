from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(prepared: Input[Dataset], epochs: int, seed: int, model: Output[Model], metrics: Output[Metrics]):
    """Train the log-mel CNN; keep the epoch with the best validation AUROC."""
    import json
    import os
    import time

    from auscult import model as screening_model
    from auscult.resources import peak_rss_mib
    from auscult.stages.prep import Prepared
    from auscult.stages.train import TrainConfig
    from auscult.stages.train import train as run

    started = time.perf_counter()
    data = Prepared.load(prepared.path)
    result = run(data, TrainConfig(epochs=epochs, seed=seed))
    os.makedirs(model.path, exist_ok=True)
    screening_model.save(result.model, os.path.join(model.path, "model.pt"))
    with open(os.path.join(model.path, "history.json"), "w") as handle:
        json.dump(result.history, handle)
    model.metadata["framework"] = "pytorch"
    model.metadata["best_epoch"] = result.best_epoch
    metrics.log_metric("best_epoch", result.best_epoch)
    metrics.log_metric("best_validation_auroc", round(result.history[result.best_epoch - 1]["validation_auroc"], 4))
    metrics.log_metric("training_windows", int((data.index["split"] == "train").sum()))
    metrics.log_metric("wall_s", round(time.perf_counter() - started, 2))
    metrics.log_metric("peak_rss_mib", peak_rss_mib())
