from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def label(
    table: Input[Dataset],
    class_map: dict,
    min_participants_per_class: int,
    seed: int,
    store_uri: str,
    run_id: str,
    run_name: str,
    labelled: Output[Dataset],
    review_queue: Output[Dataset],
    metrics: Output[Metrics],
):
    """Map source labels to the task's classes; queue what has no usable label for a person to review; split the
    participants into train, validation and test (for the whole table, before prep fans out over shards).

    Stops the run when the data cannot support a model: too few participants of a class for the split.
    """
    from auscult import table as recording_table
    from auscult.lineage import Lineage, RunRef
    from auscult.progress import Note, emit, task
    from auscult.stages.label import DEFAULT_CLASS_MAP, LABELLED, quarantine_bias, quarantine_rates
    from auscult.stages.label import label as run
    from auscult.stages.label import review_queue as queue
    from auscult.stages.split import SplitConfig, participants_by_class, require_enough_participants, split
    from auscult.store import open_store

    with task("label", metrics):
        frame = run(recording_table.read(table.path, "curate"), dict(class_map) or DEFAULT_CLASS_MAP)
        config = SplitConfig(seed=seed, min_participants_per_class=min_participants_per_class)
        pending = queue(frame)
        recording_table.write_csv(pending, review_queue.path)
        usable = frame["status"] == recording_table.OK
        metrics.log_metric("recordings", len(frame))
        metrics.log_metric("labelled_usable", int((usable & (frame["label_status"] == LABELLED)).sum()))
        metrics.log_metric("review_queue", len(pending))
        for cls, count in frame.loc[usable, "label"].value_counts().items():
            metrics.log_metric(f"class_{cls}", int(count))
        for cls, count in participants_by_class(frame).items():
            metrics.log_metric(f"{cls}_participants", count)
        rates = quarantine_rates(frame)
        for row in rates[rates["by"] == "class"].itertuples():
            metrics.log_metric(f"quarantined_share_{row.value}", round(row.quarantined_share, 4))
        if warning := quarantine_bias(rates):
            emit(Note("label", warning))
        Lineage(open_store(store_uri)).task(
            RunRef(run_id, run_name),
            "label",
            parameters={
                "class_map": dict(class_map),
                "min_participants_per_class": min_participants_per_class,
                "seed": seed,
            },
            inputs=["curate/curated"],
            outputs={"labelled": labelled.path, "review_queue": review_queue.path},
        )
        require_enough_participants(frame, config)
        frame = split(frame, config)
        recording_table.write(frame, labelled.path, "split")
        for name, group in frame.groupby("split"):
            metrics.log_metric(f"{name}_participants", int(group["participant_id"].nunique()))
