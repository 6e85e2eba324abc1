"""The lifecycle DAG: monitor -> ingest -> curate -> label -> prep -> train -> validate -> (blessed) deploy.

Monitor comes first: it reports on the model in production before this run can replace it, so a
retraining run carries the evidence that started it. The same pipeline runs in KFP's local runner and
compiles for a cluster.
"""

from kfp import dsl

from auscult.stages.label import DEFAULT_CLASS_MAP
from components import curate, deploy, ingest, label, monitor, prep, train, validate
from components.image import IMAGE

PIPELINE_NAME = "auscult-training"


@dsl.pipeline(name=PIPELINE_NAME, description="Respiratory-sound screening: from recordings to a served model.")
def training_pipeline(
    store_uri: str,
    sources: list = ["telemetry"],  # noqa: B006 - KFP reads defaults from the signature
    epochs: int = 10,
    seed: int = 0,
    min_auroc: float = 0.80,
    class_map: dict = DEFAULT_CLASS_MAP,
    serving_image: str = IMAGE.replace("runtime", "serving"),
    serving_gpus: int = 1,
):
    watch = monitor(store_uri=store_uri).set_display_name("monitor (production before this run)")
    ingested = ingest(sources=sources, store_uri=store_uri).after(watch)
    curated = curate(table=ingested.outputs["table"], store_uri=store_uri)
    labelled = label(table=curated.outputs["curated"], class_map=class_map)
    prepared = prep(table=labelled.outputs["labelled"], seed=seed)
    trained = train(prepared=prepared.outputs["prepared"], epochs=epochs, seed=seed)
    trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    trained.set_memory_limit("8G").set_cpu_limit("4")
    checked = validate(
        model=trained.outputs["model"],
        prepared=prepared.outputs["prepared"],
        store_uri=store_uri,
        min_auroc=min_auroc,
    )
    with dsl.If(checked.outputs["Output"] == True, name="blessed"):  # noqa: E712 - a KFP condition, not Python
        deploy(
            onnx_model=checked.outputs["onnx_model"],
            table=labelled.outputs["labelled"],
            store_uri=store_uri,
            serving_image=serving_image,
            gpus=serving_gpus,
        )


@dsl.pipeline(name="auscult-monitor", description="Drift and feedback performance of the production model.")
def monitor_pipeline(store_uri: str):
    monitor(store_uri=store_uri)
