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
    from auscult.progress import Note, emit, task
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
            from auscult.cluster import Cluster
            from auscult.stages.train_worker import MODULE, send_inputs, take_result, worker_arguments
            from auscult.store import SECRET_KEYS
            from auscult.training_job import OPERATORS, DistributedJob, job_name, run_job

            send_inputs(store, run_ref.run_id, prepared.path)
            secret = launch["store_secret"]
            env = tuple(
                {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for key, name in SECRET_KEYS.items()
            )
            job = DistributedJob(
                name=job_name(run_ref.run_id),
                image=training_image,
                module_args=worker_arguments(store_uri, run_ref.run_id, config),
                workers=workers,
                gpus_per_worker=int(launch.get("gpus_per_worker", 1)),
                env=env,
                service_account=launch["service_account"],
                node_selector=dict(launch.get("node_selector", {})),
                tolerations=tuple(launch.get("tolerations", [])),
                # The operator ends the job on its own if this task dies while watching it.
                deadline_s=int(launch.get("timeout_s", 6 * 3600)) + 600,
            )
            cluster = Cluster.from_environment(launch.get("namespace", ""))
            emit(Note("train", f"launching {workers} workers as a {operator} ({MODULE}) in {cluster.namespace}"))
            run_job(cluster, OPERATORS[operator](job), float(launch.get("timeout_s", 6 * 3600)), log=emit)
            result = take_result(store, run_ref.run_id, model.path)
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
