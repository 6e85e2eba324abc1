from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(sources: list, store_uri: str, table: Output[Dataset], metrics: Output[Metrics]):
    """Read recordings from sources (dataset folders, CSV manifests, "telemetry") into the data lake."""
    import os

    from auscult import table as recording_table
    from auscult.progress import Note, emit, task
    from auscult.pseudonym import PSEUDONYM_KEY_ENV
    from auscult.stages.ingest import ingest as run
    from auscult.store import open_store

    with task("ingest", metrics):
        # The key comes from a Secret (or the local run's key file), never from a pipeline parameter.
        key = os.environ.get(PSEUDONYM_KEY_ENV, "").encode()
        frame, report = run(list(sources), open_store(store_uri), key)
        recording_table.write(frame, table.path, "ingest")
        for problem in report.missing + report.refused + report.conflicts + report.metadata_notes + report.duplicates:
            emit(Note("ingest", problem))
        metrics.log_metric("recordings", report.rows)
        metrics.log_metric("duplicates", len(report.duplicates))
        metrics.log_metric("conflicts", len(report.conflicts))
        metrics.log_metric("new_objects", report.new_objects)
        metrics.log_metric("missing_files", len(report.missing))
        metrics.log_metric("refused", len(report.refused))
        metrics.log_metric("metadata_notes", len(report.metadata_notes))
