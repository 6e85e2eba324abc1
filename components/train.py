from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(
    prepared: Input[Dataset],
    epochs: int,
    seed: int,
    guard_channel: bool,
    workers: int,
    launch: dict,
    training_image: str,
    store_uri: str,
    run_id: str,
    run_name: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the log-mel CNN; keep the epoch with the best validation AUROC. With ``guard_channel``, when the
    data audit finds the recording channel predictive, cap the front end at the narrowest band and augment.

    ``workers`` data-parallel processes: in this task's pod, or, when ``launch`` names an operator ("trainjob",
    "pytorchjob"; set when the pipeline is compiled), as a job of that many pods of ``training_image`` that this
    task launches and watches.
    """
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import task
    from auscult.stages.prep import Prepared
    from auscult.stages.train import TrainConfig, check_workers
    from auscult.stages.train import train as run
    from auscult.store import open_store

    with task("train", metrics):
        config = TrainConfig(epochs=epochs, seed=seed, guard_channel=guard_channel)
        check_workers(workers, config)
        store = open_store(store_uri)
        data = Prepared.load(prepared.path)
        operator = launch.get("operator", "")
        run_ref = RunRef(run_id, run_name)
        if operator:
            from auscult.stages.train_worker import train_on_cluster

            result = train_on_cluster(
                prepared.path, config, workers, store_uri, run_ref.run_id, launch, training_image, model.path
            )
        else:
            result = run(data, config, workers=workers)
            result.save(model.path)
        model.metadata["framework"] = "pytorch"
        model.metadata["best_epoch"] = result.best_epoch
        metrics.log_metric("best_epoch", result.best_epoch)
        metrics.log_metric("workers", workers)
        best = result.history[result.best_epoch - 1]["validation_auroc"]
        metrics.log_metric("best_validation_auroc", round(best, 4))
        metrics.log_metric("training_windows", int((data.index["split"] == "train").sum()))
        metrics.log_metric("front_end_f_max_hz", round(result.model.config.f_max, 1))
        model.metadata["front_end_f_max_hz"] = round(result.model.config.f_max, 1)
        model.metadata["channel_guard"] = result.guard.describe() if result.guard else "off"
        Lineage(store).task(
            run_ref,
            "train",
            parameters={
                "epochs": epochs,
                "seed": seed,
                "guard_channel": guard_channel,
                "workers": workers,
                "operator": operator or "in the task's pod",
            },
            inputs=["prep/prepared"],
            outputs={"model": model.path},
        )
