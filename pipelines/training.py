"""The lifecycle DAG: monitor -> ingest -> curate -> label -> prep -> train -> validate -> (blessed) deploy, and the
run report as its exit task.

Monitor comes first: it reports on the model in production before this run can replace it, so a
retraining run carries the evidence that started it. The same pipeline runs in KFP's local runner and
compiles for a cluster, where ``Placement`` puts training on GPU nodes and wires credentials from Secrets.
"""

from kfp import dsl

from auscult.stages.ingest import DEFAULT_SOURCES
from auscult.stages.label import DEFAULT_CLASS_MAP
from auscult.task import MAX_REGRESSION, MIN_AUROC, MIN_MARGIN_OVER_METADATA, MIN_PARTICIPANTS_PER_CLASS
from components import (
    curate,
    deploy,
    ingest,
    label,
    measure,
    monitor,
    plan_shards,
    prep,
    prep_shard,
    run_report,
    train,
    validate,
)
from components.image import SERVING_IMAGE, TRAINING_IMAGE
from pipelines.placement import Placement, on_gpu, sized, with_pseudonym_key, with_store

PIPELINE_NAME = "auscult-training"
MONITOR_PIPELINE_NAME = "auscult-monitor"
DEFAULT_PLACEMENT = Placement()


def build_training_pipeline(placement: Placement = DEFAULT_PLACEMENT):
    @dsl.pipeline(name=PIPELINE_NAME, description="Respiratory-sound screening: from recordings to a served model.")
    def training_pipeline(
        store_uri: str,
        sources: list = list(DEFAULT_SOURCES),  # noqa: B006 - KFP reads defaults from the signature
        epochs: int = 10,
        seed: int = 0,
        shards: int = 1,  # curate and prep fan out over this many shards of the recording table
        shard_size: int = 0,  # or, above 0, over as many as keep each near this many recordings
        train_workers: int = 1,  # data-parallel training processes (pods, with a training operator)
        training_image: str = TRAINING_IMAGE,
        min_auroc: float = MIN_AUROC,
        min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS,
        min_margin_over_metadata: float = MIN_MARGIN_OVER_METADATA,
        max_regression: float = MAX_REGRESSION,
        guard_channel: bool = True,
        class_map: dict = DEFAULT_CLASS_MAP,
        serving_image: str = SERVING_IMAGE,
        serving_gpus: int = 1,
        serving: str = "seldon-v1",  # or "seldon-v2", or "none" to register and render only
        serving_namespace: str = "",
        rollout_timeout_s: int = 600,
        change_plan: str = "",  # a plan in the store (auscult plan put); empty: the shipped default
    ):
        # Every task names the run in the lineage record it writes.
        run = {"run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER, "run_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
        # The run's report is its exit task: it runs whatever happens to the tasks inside.
        summary = run_report(store_uri=store_uri, **run).set_display_name("run report")
        with_store(sized(summary, "1", "2G"), placement).set_caching_options(False)
        with dsl.ExitHandler(summary, name="lifecycle"):
            watch = monitor(store_uri=store_uri, **run).set_display_name("monitor (production before this run)")
            with_store(sized(watch, "1", "2G"), placement).set_caching_options(False)
            ingested = ingest(sources=sources, store_uri=store_uri, **run).after(watch)
            # Caching ingest would miss new files behind the same source names.
            with_pseudonym_key(with_store(sized(ingested, "1", "2G"), placement), placement).set_caching_options(False)
            # One plan for both fan-outs: a recording's shard is a function of its id and the count.
            plan = plan_shards(table=ingested.outputs["table"], shards=shards, shard_size=shard_size)
            sized(plan.set_display_name("plan shards"), "1", "1G")
            with dsl.ParallelFor(plan.output, parallelism=placement.shard_parallelism) as shard:
                measured = measure(table=ingested.outputs["table"], shard=shard.shard, count=shard.count)
                # It reads each recording from the lake.
                with_store(sized(measured.set_display_name("curate shard"), "2", "4G"), placement)
            curated = curate(
                table=ingested.outputs["table"],
                measured=dsl.Collected(measured.outputs["measured"]),
                store_uri=store_uri,
                **run,
            )
            with_store(sized(curated, "1", "4G"), placement)
            # The split is global: label assigns it to the whole table before prep fans out.
            labelled = label(
                table=curated.outputs["curated"],
                class_map=class_map,
                min_participants_per_class=min_participants_per_class,
                seed=seed,
                store_uri=store_uri,
                **run,
            )
            with_store(sized(labelled, "1", "2G"), placement)
            with dsl.ParallelFor(plan.output, parallelism=placement.shard_parallelism) as shard:
                part = prep_shard(
                    table=labelled.outputs["labelled"],
                    shard=shard.shard,
                    count=shard.count,
                    store_uri=store_uri,
                    **run,
                )
                # Its windows go to the run's working data, which the run's end deletes: never reuse a cached one.
                with_store(sized(part.set_display_name("prep shard"), "2", "8G"), placement).set_caching_options(False)
            prepared = prep(
                table=labelled.outputs["labelled"],
                parts=dsl.Collected(part.outputs["part"]),
                seed=seed,
                store_uri=store_uri,
                **run,
            )
            with_store(sized(prepared, "1", "4G"), placement).set_caching_options(False)
            trained = train(
                prepared=prepared.outputs["prepared"],
                epochs=epochs,
                seed=seed,
                guard_channel=guard_channel,
                workers=train_workers,
                launch=placement.launch(),
                training_image=training_image,
                store_uri=store_uri,
                **run,
            )
            if placement.training_operator:
                # The workers are the job's pods; this task only launches and watches them.
                with_store(sized(trained, "1", "2G"), placement)
            else:
                with_store(on_gpu(sized(trained, "4", "16G"), placement), placement)
            checked = validate(
                model=trained.outputs["model"],
                prepared=prepared.outputs["prepared"],
                store_uri=store_uri,
                min_auroc=min_auroc,
                min_participants_per_class=min_participants_per_class,
                min_margin_over_metadata=min_margin_over_metadata,
                max_regression=max_regression,
                **run,
            )
            # Validation compares with the production model, which changes between runs.
            with_store(sized(checked, "2", "8G"), placement).set_caching_options(False)
            with dsl.If(checked.outputs["Output"] == True, name="blessed"):  # noqa: E712 - a KFP condition
                deployed = deploy(
                    onnx_model=checked.outputs["onnx_model"],
                    table=labelled.outputs["labelled"],
                    store_uri=store_uri,
                    serving_image=serving_image,
                    gpus=serving_gpus,
                    node_selector=placement.gpu_node_selector,
                    tolerations=list(placement.gpu_tolerations),
                    store_secret=placement.store_secret,
                    pseudonym_secret=placement.pseudonym_secret,
                    feedback_secret=placement.feedback_secret,
                    service_account=placement.service_account,
                    serving=serving,
                    namespace=serving_namespace,
                    timeout_s=rollout_timeout_s,
                    change_plan=change_plan,
                    **run,
                )
                with_store(sized(deployed, "1", "2G"), placement).set_caching_options(False)

    return training_pipeline


def build_monitor_pipeline(placement: Placement = DEFAULT_PLACEMENT):
    @dsl.pipeline(name=MONITOR_PIPELINE_NAME, description="Drift and feedback performance of the production model.")
    def monitor_pipeline(store_uri: str):
        with_store(sized(monitor(store_uri=store_uri), "1", "2G"), placement).set_caching_options(False)

    return monitor_pipeline


training_pipeline = build_training_pipeline()
monitor_pipeline = build_monitor_pipeline()
