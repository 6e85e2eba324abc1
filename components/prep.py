from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prep(
    table: Input[Dataset],
    seed: int,
    store_uri: str,
    run_id: str,
    run_name: str,
    prepared: Output[Dataset],
    metrics: Output[Metrics],
    audit: Output[Markdown],
):
    """16 kHz mono windows; train/validation/test split by participant, stratified by label; and the audit:
    how well each recording property alone predicts the label on the training participants."""
    import math

    from auscult import audit as recording_audit
    from auscult import table as recording_table
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.stages.prep import PrepConfig, audit_markdown, split_members
    from auscult.stages.prep import prep as run
    from auscult.store import open_store

    with task("prep", metrics):
        result = run(recording_table.read(table.path, "label"), prepared.path, PrepConfig(seed=seed))
        for split, group in result.index.groupby("split"):
            metrics.log_metric(f"{split}_windows", len(group))
            metrics.log_metric(f"{split}_participants", int(group["participant_id"].nunique()))
        metrics.log_metric("recordings", int(result.table["split"].notna().sum()))
        for row in result.audit.itertuples():
            if math.isfinite(row.auroc):
                metrics.log_metric(f"property_auroc_{row.property}", round(row.auroc, 4))
        with open(audit.path, "w") as handle:
            handle.write(audit_markdown(result))
        run_ref, lineage = RunRef(run_id, run_name), Lineage(open_store(store_uri))
        lineage.task(
            run_ref,
            "prep",
            parameters={"seed": seed},
            inputs=["label/labelled"],
            outputs={"prepared": prepared.path, "audit": audit.path},
            run_facets={"auscult_membership": lineage.record_members(run_ref, "prep", split_members(result.table))},
        )
        for row in result.audit[result.audit["flagged"]].itertuples():
            emit(Note("prep", f"{recording_audit.name(row.property)} alone predicts the label: AUROC {row.auroc:.3f}"))
