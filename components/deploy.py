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
    store_secret: str,
    pseudonym_secret: str,
    feedback_secret: str,
    service_account: str,
    serving: str,
    namespace: str,
    timeout_s: int,
    serving_manifest: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """Register the blessed model, move the production pointer, and roll the serving resource out.

    ``serving``: "seldon-v1", "seldon-v2", or "none" (render only, as on one machine). ``namespace``: where
    to deploy (empty: the pipeline's own namespace). The three Secrets and ``service_account``: what the
    predictor's pod uses on the cluster.
    """
    import yaml

    from auscult.cluster import Cluster
    from auscult.progress import Note, emit, task
    from auscult.registry import Registry
    from auscult.stages.deploy import ServingSpec, model_card
    from auscult.stages.deploy import deploy as run
    from auscult.stages.validate import Verdict
    from auscult.store import open_store

    with task("deploy", metrics):
        verdict = Verdict.load(onnx_model.path)
        with open(table.path, "rb") as handle:
            card = model_card(verdict.metrics, verdict.reasons, handle.read())
        cluster = None if serving == "none" else Cluster.from_environment(namespace)
        spec = ServingSpec(
            namespace=cluster.namespace if cluster else ServingSpec().namespace,
            image=serving_image,
            gpus=gpus,
            node_selector=dict(node_selector),
            tolerations=list(tolerations),
            store_secret=store_secret,
            pseudonym_secret=pseudonym_secret,
            feedback_secret=feedback_secret,
            service_account=service_account,
        )
        target = "seldon-v1" if serving == "none" else serving
        registry = Registry(open_store(store_uri))
        result = run(registry, Verdict.onnx(onnx_model.path), card, verdict.reference, spec, target, cluster, timeout_s)
        with open(serving_manifest.path, "w") as handle:
            yaml.safe_dump(result.manifest, handle, sort_keys=False)
        serving_manifest.metadata.update({"version": result.version, "previous": result.previous or ""})
        emit(Note("deploy", f"production is now {result.version} (previous: {result.previous})"))
    return result.version
