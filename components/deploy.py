from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(
    onnx_model: Input[Model],
    table: Input[Dataset],
    store_uri: str,
    serving_image: str,
    gpus: int,
    node_selector: dict,
    tolerations: list,
    serving: str,
    namespace: str,
    timeout_s: int,
    serving_manifest: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """Register the blessed model, move the production pointer, and roll the serving resource out.

    ``serving``: "seldon-v1", "seldon-v2", or "none" (render only, as on one machine). ``namespace``: where
    to deploy (empty: the pipeline's own namespace).
    """
    import json
    import os
    import time

    import yaml

    from auscult.cluster import Cluster
    from auscult.registry import Registry
    from auscult.resources import peak_rss_mib
    from auscult.stages.deploy import ServingSpec, model_card
    from auscult.stages.deploy import deploy as run
    from auscult.store import open_store

    started = time.perf_counter()
    with open(os.path.join(onnx_model.path, "validation.json")) as handle:
        validation = json.load(handle)
    with open(os.path.join(onnx_model.path, "reference.json")) as handle:
        reference = json.load(handle)
    with open(os.path.join(onnx_model.path, "model.onnx"), "rb") as handle:
        onnx = handle.read()
    with open(table.path, "rb") as handle:
        card = model_card(
            validation["metrics"], validation["reasons"], handle.read(), os.environ.get("AUSCULT_CODE_VERSION")
        )
    cluster = None if serving == "none" else Cluster.from_environment(namespace)
    spec = ServingSpec(
        namespace=cluster.namespace if cluster else ServingSpec().namespace,
        image=serving_image,
        gpus=gpus,
        node_selector=dict(node_selector),
        tolerations=list(tolerations),
    )
    target = "seldon-v1" if serving == "none" else serving
    result = run(Registry(open_store(store_uri)), onnx, card, reference, spec, target, cluster, timeout_s)
    with open(serving_manifest.path, "w") as handle:
        yaml.safe_dump(result.manifest, handle, sort_keys=False)
    serving_manifest.metadata.update({"version": result.version, "previous": result.previous or ""})
    print(f"deploy: production is now {result.version} (previous: {result.previous})")
    metrics.log_metric("wall_s", round(time.perf_counter() - started, 2))
    metrics.log_metric("peak_rss_mib", peak_rss_mib())
    return result.version
