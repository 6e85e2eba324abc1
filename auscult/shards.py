"""Shards of the recording table: the unit of work that curate and prep fan out over on a cluster.

A recording's shard is a function of its id (a content hash) and the shard count alone, so every stage that
shards the table cuts it the same way, whatever order the rows come in and whichever task asks.
"""

from __future__ import annotations

import math

import pandas as pd

# Shards of about this many recordings, when a target size decides the count: a shard's prep then writes
# about 2,000 x 2 windows of 2 s (0.5 GB) and takes a few minutes on a 2-core pod.
DEFAULT_SHARD_SIZE = 2_000
# KFP hands a merge task every shard's artifact in one command-line argument (Linux caps one at 128 KiB) and Argo
# keeps every iteration in one workflow object: past a few hundred shards the shards must grow instead.
MAX_SHARDS = 256


def shard_of(recording_id: str, shards: int) -> int:
    """The shard (0 to ``shards - 1``) of a recording, from the leading 64 bits of its sha256 id."""
    return int(recording_id[:16], 16) % shards


def shard_count(recordings: int, shards: int = 1, shard_size: int = 0) -> int:
    """How many shards: ``shards``, or, when ``shard_size`` is given, as many as keep each near that size; never
    more than :data:`MAX_SHARDS`."""
    if shards < 1 or shard_size < 0:
        raise ValueError(f"shards must be at least 1 and shard_size not negative (got {shards}, {shard_size})")
    return min(MAX_SHARDS, max(1, math.ceil(recordings / shard_size)) if shard_size else shards)


def select(frame: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """The rows of ``frame`` in ``shard`` of ``shards``, in their order in ``frame``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
    mask = [shard_of(str(rid), shards) == shard for rid in frame["recording_id"]]
    return frame[pd.Series(mask, index=frame.index, dtype=bool)]


def in_table_order(frame: pd.DataFrame, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``parts`` (each some of ``frame``'s recordings, with more columns) joined back into ``frame``'s row order:
    a merged table does not depend on how it was sharded. Every recording must be in exactly one part."""
    joined = pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]
    ids = joined["recording_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"recording {ids[ids.duplicated()].iloc[0]} is in two shards")
    position = pd.Series(range(len(frame)), index=frame["recording_id"].astype(str))
    missing = set(position.index) - set(ids)
    if missing or len(ids) != len(position):
        raise ValueError(f"{len(missing)} recording(s) of the table are in no shard, e.g. {sorted(missing)[:1]}")
    return joined.iloc[position.loc[ids].argsort(kind="stable")].reset_index(drop=True)
