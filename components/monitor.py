from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor(
    store_uri: str, metrics: Output[Metrics], report: Output[HTML], run_id: str = "", run_name: str = ""
) -> NamedTuple("Decision", [("retrain", bool), ("reasons", str)]):
    """Drift and feedback performance of the production model; retrain or not, and why. Inside a training run
    (``run_id``), its drift plots are kept for the run report."""
    import math
    from collections import namedtuple

    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.registry import Registry
    from auscult.run_report import keep_figures
    from auscult.stages.monitor import monitor as run
    from auscult.stages.monitor import record_decision, report_html
    from auscult.store import open_store

    with task("monitor", metrics):
        registry = Registry(open_store(store_uri))
        result = run(registry)
        record_decision(registry, result)
        page = report_html(result)
        with open(report.path, "w") as handle:
            handle.write(page)
        if run_id:  # inside a training run: its report shows what production did before it
            keep_figures(registry.store, RunRef(run_id, run_name), "monitor", page)
            Lineage(registry.store).task(
                RunRef(run_id, run_name),
                "monitor",
                parameters={"requests": result.requests, "retrain": result.retrain},
                outputs={"report": report.path},
            )
        metrics.log_metric("requests", result.requests)
        metrics.log_metric("feedback_labels", result.feedback)
        if not math.isnan(result.feedback_auroc):
            metrics.log_metric("feedback_auroc", round(result.feedback_auroc, 4))
        for drift in result.drift:
            metrics.log_metric(f"psi_{drift['name']}", round(drift["psi"], 4))
        metrics.log_metric("retrain", int(result.retrain))
        for reason in result.reasons:
            emit(Note("monitor", reason))
    return namedtuple("Decision", ["retrain", "reasons"])(result.retrain, "\n".join(result.reasons))
