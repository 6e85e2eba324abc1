from kfp import dsl
from kfp.dsl import Dataset, Input

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_shards(table: Input[Dataset], shards: int, shard_size: int) -> list[dict]:
    """The shards curate and prep fan out over: ``shards`` of them, or, when ``shard_size`` is above 0, as many as
    keep each near that many recordings. Each item names its shard and the count."""
    import pandas as pd

    from auscult.shards import shard_count

    count = shard_count(len(pd.read_parquet(table.path, columns=["recording_id"])), shards, shard_size)
    return [{"shard": shard, "count": count} for shard in range(count)]
