from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prep_shard(
    table: Input[Dataset],
    shard: int,
    count: int,
    store_uri: str,
    run_id: str,
    run_name: str,
    part: Output[Dataset],
    metrics: Output[Metrics],
):
    """16 kHz mono windows of one shard's usable, labelled recordings, streamed to a file that goes to the run's
    working data in the object store; the artifact keeps their index."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from auscult import layout, working
    from auscult import table as recording_table
    from auscult.lineage import RunRef
    from auscult.progress import task
    from auscult.stages.prep import prep_shard as run
    from auscult.store import open_store

    with task("prep", metrics), tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "windows.npy"
        result = run(recording_table.read(table.path, "split"), shard, count, local)
        run = RunRef(run_id, run_name).run_id
        where = working.publish(open_store(store_uri), run, layout.run_windows(run, shard, count), local)
        dataclasses.replace(result, windows=where).save(part.path)
        metrics.log_metric("recordings", len(result.recordings))
        metrics.log_metric("windows", len(result.index))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prep(
    table: Input[Dataset],
    parts: Input[list[Dataset]],
    seed: int,
    store_uri: str,
    run_id: str,
    run_name: str,
    prepared: Output[Dataset],
    metrics: Output[Metrics],
    audit: Output[Markdown],
):
    """The shards' windows indexed as one (in the table's order, whatever the sharding), and the audit: how well
    each recording property alone predicts the label on the training participants."""
    import math

    from auscult import audit as recording_audit
    from auscult import table as recording_table
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.stages.prep import PreparedShard, PrepConfig, audit_markdown, merge
    from auscult.stages.split import split_members
    from auscult.store import open_store

    with task("prep", metrics):
        shards = [PreparedShard.load(part.path) for part in parts]
        result = merge(recording_table.read(table.path, "split"), shards, prepared.path, PrepConfig(seed=seed))
        for split, group in result.index.groupby("split"):
            metrics.log_metric(f"{split}_windows", len(group))
            metrics.log_metric(f"{split}_participants", int(group["participant_id"].nunique()))
        metrics.log_metric("recordings", int(result.table["windows"].notna().sum()))
        metrics.log_metric("shards", len(shards))
        for row in result.audit.itertuples():
            if math.isfinite(row.auroc):
                metrics.log_metric(f"property_auroc_{row.property}", round(row.auroc, 4))
        with open(audit.path, "w") as handle:
            handle.write(audit_markdown(result))
        run_ref, lineage = RunRef(run_id, run_name), Lineage(open_store(store_uri))
        lineage.task(
            run_ref,
            "prep",
            parameters={"seed": seed, "shards": len(shards)},
            inputs=["label/labelled"],
            outputs={"prepared": prepared.path, "audit": audit.path},
            run_facets={"auscult_membership": lineage.record_members(run_ref, "prep", split_members(result.table))},
        )
        for row in result.audit[result.audit["flagged"]].itertuples():
            emit(Note("prep", f"{recording_audit.name(row.property)} alone predicts the label: AUROC {row.auroc:.3f}"))
