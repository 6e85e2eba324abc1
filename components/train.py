from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(
    prepared: Input[Dataset],
    epochs: int,
    seed: int,
    guard_channel: bool,
    store_uri: str,
    run_id: str,
    run_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the log-mel CNN; keep the epoch with the best validation AUROC. With ``guard_channel``, when the
    data audit finds the recording channel predictive, cap the front end at the narrowest band and augment."""
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import task
    from auscult.stages.prep import Prepared
    from auscult.stages.train import TrainConfig
    from auscult.stages.train import train as run
    from auscult.store import open_store

    with task("train", metrics):
        data = Prepared.load(prepared.path)
        result = run(data, TrainConfig(epochs=epochs, seed=seed, guard_channel=guard_channel))
        result.save(model.path)
        model.metadata["framework"] = "pytorch"
        model.metadata["best_epoch"] = result.best_epoch
        metrics.log_metric("best_epoch", result.best_epoch)
        best = result.history[result.best_epoch - 1]["validation_auroc"]
        metrics.log_metric("best_validation_auroc", round(best, 4))
        metrics.log_metric("training_windows", int((data.index["split"] == "train").sum()))
        metrics.log_metric("front_end_f_max_hz", round(result.model.config.f_max, 1))
        model.metadata["front_end_f_max_hz"] = round(result.model.config.f_max, 1)
        model.metadata["channel_guard"] = result.guard.describe() if result.guard else "off"
        Lineage(open_store(store_uri)).task(
            RunRef(run_id, run_name),
            "train",
            parameters={"epochs": epochs, "seed": seed, "guard_channel": guard_channel},
            inputs=["prep/prepared"],
            outputs={"model": model.path},
        )
