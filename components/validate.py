from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    model: Input[Model],
    prepared: Input[Dataset],
    store_uri: str,
    min_auroc: float,
    min_participants_per_class: int,
    min_margin_over_metadata: float,
    max_regression: float,
    run_id: str,
    run_name: str,
    onnx_model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    summary: Output[Markdown],
) -> bool:
    """Metrics with CIs, torch-vs-ONNX parity, a serving-runtime check and a production comparison.

    Returns whether the model is blessed (a single output: KFP's local runner resolves conditions on it);
    the reasons are in the report and in the verdict saved beside the ONNX model.
    """
    import math

    from auscult.lineage import Lineage, RunRef, facet
    from auscult.progress import Note, emit, task
    from auscult.registry import Registry
    from auscult.run_report import keep_figures
    from auscult.stages.prep import Prepared
    from auscult.stages.train import TrainResult
    from auscult.stages.validate import ValidateConfig, report_html, summary_markdown
    from auscult.stages.validate import validate as run
    from auscult.store import open_store
    from auscult.task import CLASSES

    with task("validate", metrics):
        trained = TrainResult.load(model.path)
        store = open_store(store_uri)
        result = run(
            trained,
            Prepared.load(prepared.path),
            onnx_model.path,
            Registry(store),
            ValidateConfig(
                min_auroc=min_auroc,
                min_participants_per_class=min_participants_per_class,
                min_margin_over_metadata=min_margin_over_metadata,
                max_regression=max_regression,
            ),
        )
        # An undefined figure (NaN: an interval with too few participants) is left out: it is not a number.
        figures = {name: round(value, 4) for name, value in result.metrics.items() if math.isfinite(value)}
        onnx_model.metadata.update({"framework": "onnx", "blessed": result.blessed, **figures})
        for name, value in figures.items():
            metrics.log_metric(name, value)
        fpr, tpr, thresholds = result.assessment.roc
        classification.log_roc_curve(fpr.tolist(), tpr.tolist(), [min(1.0, float(t)) for t in thresholds])
        classification.log_confusion_matrix(list(CLASSES), result.assessment.confusion.tolist())
        page = report_html(result, trained.history)
        with open(report.path, "w") as handle:
            handle.write(page)
        keep_figures(store, RunRef(run_id, run_name), "validate", page)
        with open(summary.path, "w") as handle:
            handle.write(summary_markdown(result))
        for reason in result.reasons:
            emit(Note("validate", reason))
        verdict = facet("VerdictFacet", blessed=result.blessed, reasons=result.reasons, figures=figures)
        Lineage(store).task(
            RunRef(run_id, run_name),
            "validate",
            parameters={
                "min_auroc": min_auroc,
                "min_participants_per_class": min_participants_per_class,
                "min_margin_over_metadata": min_margin_over_metadata,
                "max_regression": max_regression,
            },
            inputs=["train/model", "prep/prepared"],
            outputs={"onnx_model": onnx_model.path, "report": report.path},
            run_facets={"auscult_verdict": verdict},
        )
    return result.blessed
