from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(prepared: Input[Dataset], epochs: int, seed: int, model: Output[Model], metrics: Output[Metrics]):
    """Train the log-mel CNN; keep the epoch with the best validation AUROC."""
    from auscult.progress import task
    from auscult.stages.prep import Prepared
    from auscult.stages.train import TrainConfig
    from auscult.stages.train import train as run

    with task("train", metrics):
        data = Prepared.load(prepared.path)
        result = run(data, TrainConfig(epochs=epochs, seed=seed))
        result.save(model.path)
        model.metadata["framework"] = "pytorch"
        model.metadata["best_epoch"] = result.best_epoch
        metrics.log_metric("best_epoch", result.best_epoch)
        best = result.history[result.best_epoch - 1]["validation_auroc"]
        metrics.log_metric("best_validation_auroc", round(best, 4))
        metrics.log_metric("training_windows", int((data.index["split"] == "train").sum()))
