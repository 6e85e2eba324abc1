from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

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
    change_plan: str,
    run_id: str,
    run_name: str,
    serving_manifest: Output[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
) -> str:
    """Register the blessed model, move the production pointer, and roll the serving resource out.

    ``serving``: "seldon-v1", "seldon-v2", or "none" (render only, as on one machine). ``namespace``: where
    to deploy (empty: the pipeline's own namespace). The three Secrets and ``service_account``: what the
    predictor's pod uses on the cluster. ``change_plan``: the change-control plan in the store that decides
    whether the model ships on its own or awaits a person's approval (empty: the shipped default).
    """
    import yaml

    from auscult.change_control import load_plan
    from auscult.cluster import Cluster
    from auscult.lineage import RunRef
    from auscult.progress import Note, emit, task
    from auscult.registry import Registry
    from auscult.stages.deploy import ServingSpec, model_card
    from auscult.stages.deploy import deploy as run
    from auscult.stages.validate import Verdict
    from auscult.store import open_store

    with task("deploy", metrics):
        verdict = Verdict.load(onnx_model.path)
        run_ref = RunRef(run_id, run_name)
        with open(table.path, "rb") as handle:
            card = model_card(verdict, handle.read(), run_ref)
        registry = Registry(open_store(store_uri))
        plan = load_plan(registry.store, change_plan)
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
        onnx = Verdict.onnx(onnx_model.path)
        result = run(registry, onnx, card, verdict.reference, spec, target, cluster, timeout_s, plan=plan, run=run_ref)
        with open(serving_manifest.path, "w") as handle:
            yaml.safe_dump(result.manifest, handle, sort_keys=False)
        serving_manifest.metadata.update({"version": result.version, "previous": result.previous or ""})
        for note in result.notes():
            emit(Note("deploy", note))
        metrics.log_metric("awaiting_approval", int(result.awaits_approval))
        with open(summary.path, "w") as handle:
            handle.write(result.summary_markdown(registry))
    return result.version
