from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(sources: list, store_uri: str, run_id: str, run_name: str, table: Output[Dataset], metrics: Output[Metrics]):
    """Read recordings from sources (dataset folders, CSV manifests, "telemetry") into the data lake."""
    import os

    from auscult import table as recording_table
    from auscult.errors import InputError
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.pseudonym import PSEUDONYM_KEY_ENV
    from auscult.stages.ingest import ingest as run
    from auscult.stages.ingest import nothing_found
    from auscult.store import open_store

    with task("ingest", metrics):
        # The key comes from a Secret (or the local run's key file), never from a pipeline parameter.
        key = os.environ.get(PSEUDONYM_KEY_ENV, "").encode()
        store = open_store(store_uri)
        frame, report = run(list(sources), store, key)
        for problem in report.missing + report.refused + report.conflicts + report.metadata_notes + report.duplicates:
            emit(Note("ingest", problem))
        if frame.empty:
            raise InputError(nothing_found(list(sources), report))
        recording_table.write(frame, table.path, "ingest")
        run_ref, lineage = RunRef(run_id, run_name), Lineage(store)
        lineage.note_origins(frame.to_dict("records"))
        members = lineage.record_members(run_ref, "ingest", {"recordings": sorted(frame["recording_id"])})
        lineage.task(
            run_ref,
            "ingest",
            parameters={"sources": list(sources)},
            outputs={"table": table.path},
            run_facets={"auscult_membership": members},
        )
        metrics.log_metric("recordings", report.rows)
        metrics.log_metric("duplicates", len(report.duplicates))
        metrics.log_metric("conflicts", len(report.conflicts))
        metrics.log_metric("new_objects", report.new_objects)
        metrics.log_metric("missing_files", len(report.missing))
        metrics.log_metric("refused", len(report.refused))
        metrics.log_metric("metadata_notes", len(report.metadata_notes))
        metrics.log_metric("erased", report.erased)
        if report.erased:
            emit(Note("ingest", f"{report.erased} recordings were erased at a participant's request: not ingested"))
