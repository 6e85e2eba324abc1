"""split: train/validation/test by participant, stratified by label, for the whole table at once.

The split runs right after label and before prep fans out over shards: it is global (no participant on both
sides, however the table is sharded). It is a function of the recordings and the seed alone, not of the
pseudonymisation key: the same data splits the same way in any workspace.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import pandas as pd

from auscult import table
from auscult.errors import InputError
from auscult.stages.label import LABELLED
from auscult.task import CLASSES, MIN_PARTICIPANTS_PER_CLASS, SPLITS


@dataclass(frozen=True)
class SplitConfig:
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    # Validation and test each need this many participants of each class for a verdict to mean anything.
    min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS

    @property
    def participants_needed_per_class(self) -> int:
        """Enough participants of a class that validation and test each get the minimum, and training more."""
        smallest = min(self.validation_fraction, self.test_fraction)
        floor = 3 * self.min_participants_per_class
        return max(floor, math.ceil(self.min_participants_per_class / smallest - 1e-9)) if smallest > 0 else floor


def usable(frame: pd.DataFrame) -> pd.Series:
    """The rows a model may learn from or be judged on: not quarantined, and labelled."""
    return (frame["status"] == table.OK) & (frame["label_status"] == LABELLED)


def participants_by_class(frame: pd.DataFrame) -> dict[str, int]:
    """How many participants have usable, labelled recordings, per class (every class, zeros included)."""
    frame = frame[usable(frame)]
    counts = frame.groupby("label")["participant_id"].nunique()
    return {cls: int(counts.get(cls, 0)) for cls in CLASSES}


def require_enough_participants(frame: pd.DataFrame, config: SplitConfig = SplitConfig()) -> dict[str, int]:
    """Participants per class, or an InputError saying the data cannot support a model, with the counts."""
    counts = participants_by_class(frame)
    needed = config.participants_needed_per_class
    if min(counts.values()) < needed:
        have = ", ".join(f"{cls}: {count} participants" for cls, count in counts.items())
        ok = frame["status"] == table.OK
        where = (
            f"of {len(frame)} recordings, {int((~ok).sum())} are quarantined, "
            f"{int(usable(frame).sum())} labelled, "
            f"{int((ok & (frame['label_status'] != LABELLED)).sum())} without a usable label (review queue)"
        )
        raise InputError(
            f"{have}; training needs at least {needed} of each (validation and test each need "
            f"{config.min_participants_per_class} per class and take {config.validation_fraction:.0%} and "
            f"{config.test_fraction:.0%}); {where}. Add labelled recordings, or lower "
            "--min-participants-per-class (pipeline parameter min_participants_per_class)"
        )
    return counts


def split_participants(frame: pd.DataFrame, config: SplitConfig) -> dict[str, str]:
    """participant -> split, stratified by label, for the usable labelled rows of ``frame``.

    Participants are ordered by a hash of the seed and their first recording's id (a content hash), so the
    split follows the data and the seed, not the keyed pseudonyms.
    """
    people = frame.groupby("participant_id").agg(label=("label", "first"), first=("recording_id", "min"))
    people["order"] = [hashlib.sha256(f"{config.seed}:{first}".encode()).hexdigest() for first in people["first"]]
    assignment: dict[str, str] = {}
    for cls in sorted(people["label"].unique()):
        members = list(people[people["label"] == cls].sort_values("order").index)
        count = len(members)
        n_test = int(round(count * config.test_fraction)) if count >= 3 else 0
        n_validation = int(round(count * config.validation_fraction)) if count >= 3 else 0
        for position, person in enumerate(members):
            assignment[person] = (
                "test" if position < n_test else "validation" if position < n_test + n_validation else "train"
            )
    return assignment


def split_members(prepared: pd.DataFrame) -> dict[str, list[str]]:
    """The recording ids of each split (what the lineage record keeps of a run's data)."""
    return {split: sorted(prepared.loc[prepared["split"] == split, "recording_id"].astype(str)) for split in SPLITS}


def split(frame: pd.DataFrame, config: SplitConfig = SplitConfig()) -> pd.DataFrame:
    """``frame`` with its ``split`` column: the participant's split for usable, labelled rows, missing for others."""
    frame = table.validate(frame, "label")
    chosen = frame[usable(frame)]
    assignment = split_participants(chosen, config)
    column = pd.Series(pd.NA, index=frame.index, dtype="string")
    column[chosen.index] = [assignment[person] for person in chosen["participant_id"]]
    return table.validate(frame.assign(split=column), "split")
