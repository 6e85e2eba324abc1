from kfp import dsl
from kfp.dsl import HTML, Metrics, Output, PipelineTaskFinalStatus

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def run_report(
    store_uri: str,
    run_id: str,
    run_name: str,
    status: PipelineTaskFinalStatus,
    page: Output[HTML],
    metrics: Output[Metrics],
):
    """The run's story on one page, whatever its end: verdict and reasons, key figures and plots, time per stage,
    lineage and approvals. The pipeline's exit task: it runs after a failed run too."""
    from auscult import layout, working
    from auscult.lineage import RunRef
    from auscult.progress import Note, emit, task
    from auscult.run_report import page as build
    from auscult.store import open_store

    with task("report", metrics):
        store = open_store(store_uri)
        run = RunRef(run_id, run_name)
        try:
            html = build(store, run, status.state, status.error_message or "")
        except Exception as error:  # the report must not turn a good run into a failed one
            html = f"<!doctype html><title>{status.state}</title><p>The run {status.state.lower()}.</p>"
            html += f"<p>Its report could not be drawn: {type(error).__name__}: {error}</p>"
            emit(Note("report", f"the report could not be drawn: {error!r}"))
        with open(page.path, "w") as handle:
            handle.write(html)
        store.put(layout.run_report(run.run_id), html.encode())
        where = store.uri(layout.run_report(run.run_id))
        emit(Note("report", f"the run {status.state.lower()}; its report: {where}"))
        # A run that succeeded needs its working data (its windows) no more: it goes now. A failed one keeps it for
        # a retry until the retention period ends, when the exit task of a later run deletes it.
        try:
            if status.state == "SUCCEEDED":
                metrics.log_metric("working_objects_released", working.release(store, run.run_id))
            if stale := working.sweep(store):
                emit(Note("report", f"deleted the working data of {len(stale)} run(s) past the retention period"))
        except Exception as error:  # housekeeping must not turn a good run into a failed one either
            emit(Note("report", f"working data not cleaned up this time: {error!r}"))
