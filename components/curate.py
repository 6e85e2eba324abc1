from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def measure(table: Input[Dataset], shard: int, count: int, measured: Output[Dataset], metrics: Output[Metrics]):
    """Decode, measure and judge the recordings of one shard of the table (nothing is written to the store: the
    curate task decides on the whole)."""
    from auscult import table as recording_table
    from auscult.progress import task
    from auscult.stages.curate import measure_shard

    with task("curate", metrics):
        found = measure_shard(recording_table.read(table.path, "ingest"), shard, count)
        found.to_parquet(measured.path, index=False)
        metrics.log_metric("recordings", len(found))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def curate(
    table: Input[Dataset],
    measured: Input[list[Dataset]],
    store_uri: str,
    run_id: str,
    run_name: str,
    curated: Output[Dataset],
    profile: Output[HTML],
    metrics: Output[Metrics],
):
    """The measured shards as one table: the Great Expectations suite on the whole, quarantine with reasons,
    the data profile."""
    import pandas as pd

    from auscult import table as recording_table
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.run_report import keep_figures
    from auscult.stages.curate import check, profile_html, quarantine_decisions, reason_counts
    from auscult.store import open_store

    with task("curate", metrics):
        store = open_store(store_uri)
        parts = [pd.read_parquet(part.path) for part in measured]
        frame, expectations = check(recording_table.read(table.path, "ingest"), parts, store)
        recording_table.write(frame, curated.path, "curate")
        page = profile_html(frame, expectations)
        with open(profile.path, "w") as handle:
            handle.write(page)
        quarantined = int((frame["status"] == recording_table.QUARANTINED).sum())
        run_ref, lineage = RunRef(run_id, run_name), Lineage(store)
        keep_figures(store, run_ref, "curate", page)
        decisions = quarantine_decisions(frame)
        lineage.task(
            run_ref,
            "curate",
            parameters={"shards": len(parts)},
            inputs=["ingest/table"],
            outputs={"curated": curated.path, "profile": profile.path},
            run_facets={"auscult_membership": lineage.record_members(run_ref, "curate", {"quarantined": decisions})},
        )
        metrics.log_metric("recordings", len(frame))
        metrics.log_metric("shards", len(parts))
        metrics.log_metric("quarantined", quarantined)
        metrics.log_metric("usable", len(frame) - quarantined)
        metrics.log_metric("expectations_failed", sum(not e["success"] for e in expectations))
        for reason, count in reason_counts(frame).items():
            emit(Note("curate", f"quarantined {count}: {reason}"))
