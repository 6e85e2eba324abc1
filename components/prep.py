from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prep(table: Input[Dataset], seed: int, prepared: Output[Dataset], metrics: Output[Metrics]):
    """16 kHz mono windows; train/validation/test split by participant, stratified by label."""
    import time

    from auscult import table as recording_table
    from auscult.resources import peak_rss_mib
    from auscult.stages.prep import PrepConfig
    from auscult.stages.prep import prep as run

    started = time.perf_counter()
    result = run(recording_table.read(table.path, "label"), prepared.path, PrepConfig(seed=seed))
    for split, group in result.index.groupby("split"):
        metrics.log_metric(f"{split}_windows", len(group))
        metrics.log_metric(f"{split}_participants", int(group["participant_id"].nunique()))
    metrics.log_metric("recordings", int(result.table["split"].notna().sum()))
    metrics.log_metric("wall_s", round(time.perf_counter() - started, 2))
    metrics.log_metric("peak_rss_mib", peak_rss_mib())
