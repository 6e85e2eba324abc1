from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prep(table: Input[Dataset], seed: int, prepared: Output[Dataset], metrics: Output[Metrics]):
    """16 kHz mono windows; train/validation/test split by participant, stratified by label."""
    from auscult import table as recording_table
    from auscult.progress import task
    from auscult.stages.prep import PrepConfig
    from auscult.stages.prep import prep as run

    with task("prep", metrics):
        result = run(recording_table.read(table.path, "label"), prepared.path, PrepConfig(seed=seed))
        for split, group in result.index.groupby("split"):
            metrics.log_metric(f"{split}_windows", len(group))
            metrics.log_metric(f"{split}_participants", int(group["participant_id"].nunique()))
        metrics.log_metric("recordings", int(result.table["split"].notna().sum()))
