from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    model: Input[Model],
    prepared: Input[Dataset],
    store_uri: str,
    min_auroc: float,
    onnx_model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
) -> bool:
    """Metrics with CIs, torch-vs-ONNX parity, a serving-runtime check and a production comparison.

    Returns whether the model is blessed (a single output: KFP's local runner resolves conditions on it);
    the reasons are in the report and in ``validation.json`` beside the ONNX model.
    """
    import json
    import os
    import time

    from auscult import model as screening_model
    from auscult.registry import Registry
    from auscult.resources import peak_rss_mib
    from auscult.stages.prep import Prepared
    from auscult.stages.validate import ValidateConfig, report_html
    from auscult.stages.validate import validate as run
    from auscult.store import open_store
    from auscult.task import CLASSES

    started = time.perf_counter()
    os.makedirs(onnx_model.path, exist_ok=True)
    result = run(
        screening_model.load(os.path.join(model.path, "model.pt")),
        Prepared.load(prepared.path),
        os.path.join(onnx_model.path, "model.onnx"),
        Registry(open_store(store_uri)),
        ValidateConfig(min_auroc=min_auroc),
    )
    with open(os.path.join(onnx_model.path, "reference.json"), "w") as handle:
        json.dump(result.reference, handle)
    with open(os.path.join(onnx_model.path, "validation.json"), "w") as handle:
        json.dump({"metrics": result.metrics, "reasons": result.reasons, "blessed": result.blessed}, handle)
    onnx_model.metadata.update({"framework": "onnx", "blessed": result.blessed, **result.metrics})
    for name, value in result.metrics.items():
        metrics.log_metric(name, round(value, 4))
    fpr, tpr, thresholds = result.roc
    classification.log_roc_curve(fpr.tolist(), tpr.tolist(), [min(1.0, float(t)) for t in thresholds])
    classification.log_confusion_matrix(list(CLASSES), result.confusion.tolist())
    history_path = os.path.join(model.path, "history.json")
    with open(history_path) as handle:
        history = json.load(handle)
    with open(report.path, "w") as handle:
        handle.write(report_html(result, history))
    for reason in result.reasons:
        print(f"validate: {reason}")
    metrics.log_metric("wall_s", round(time.perf_counter() - started, 2))
    metrics.log_metric("peak_rss_mib", peak_rss_mib())
    return result.blessed
