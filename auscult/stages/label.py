"""label: map each source's own label to the task's classes; what has no usable label is kept for review.

A recording without a usable label (a value the class map does not know, none at all, sources that
disagree about the same participant, or byte-identical copies that ingest found naming different participants
or labels) stays in the table, is never trained on, and is queued for a person to review with a note that
names the file(s).
"""

from __future__ import annotations

import pandas as pd
from scipy.stats import fisher_exact

from auscult import table
from auscult.task import CLASSES

DEFAULT_CLASS_MAP: dict[str, list[str]] = {
    "negative": ["negative", "healthy", "false", "covid-negative", "no_resp_illness_exposed"],
    "positive": ["positive", "positive_mild", "positive_moderate", "positive_asymp", "true", "covid-positive"],
}

LABELLED, UNLABELLED, REVIEW = "labelled", "unlabelled", "review"


def invert(class_map: dict[str, list[str]]) -> dict[str, str]:
    """raw value (lower case) -> class; a raw value claimed by two classes is a configuration error."""
    lookup: dict[str, str] = {}
    for cls, values in class_map.items():
        for value in [cls, *values]:
            key = value.strip().lower()
            if lookup.get(key, cls) != cls:
                raise ValueError(f"class map sends {value!r} to both {lookup[key]!r} and {cls!r}")
            lookup[key] = cls
    return lookup


def label(frame: pd.DataFrame, class_map: dict[str, list[str]] = DEFAULT_CLASS_MAP) -> pd.DataFrame:
    """Add ``label``, ``label_status`` and ``label_note``."""
    frame = table.validate(frame, "curate")
    lookup = invert(class_map)
    raw = frame["raw_label"].str.strip().str.lower()
    mapped = raw.map(lookup).astype("string")
    status = pd.Series(LABELLED, index=frame.index, dtype="string")
    note = pd.Series(pd.NA, index=frame.index, dtype="string")
    unknown = raw.notna() & mapped.isna()
    status[raw.isna()] = UNLABELLED
    note[raw.isna()] = frame["original_path"][raw.isna()] + ": no label in the source"
    status[unknown] = REVIEW
    note[unknown] = (
        frame["original_path"][unknown] + ": label '" + frame["raw_label"][unknown] + "' is not in the class map"
    )
    # One person cannot be both positive and negative: when their recordings disagree, a person decides.
    classes_per_person = mapped.groupby(frame["participant_id"]).transform(lambda s: s.dropna().nunique())
    conflict = mapped.notna() & (classes_per_person > 1)
    status[conflict] = REVIEW
    note[conflict] = frame["original_path"][conflict] + ": recordings of this participant carry different labels"
    # The same bytes came with different participants or labels: whichever copy ingest kept, a person decides.
    disputed = frame["conflict"].notna()
    status[disputed] = REVIEW
    note[disputed] = frame["conflict"][disputed]
    mapped[status != LABELLED] = pd.NA
    out = frame.assign(label=mapped, label_status=status, label_note=note)
    return table.validate(out, "label")


def review_queue(frame: pd.DataFrame) -> pd.DataFrame:
    """Usable recordings that need a person's label, with why."""
    frame = table.validate(frame, "label")
    usable = frame["status"] == table.OK
    return frame.loc[
        usable & (frame["label_status"] == REVIEW), ["recording_id", "original_path", "raw_label", "label_note"]
    ]


def quarantine_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """How many recordings curate quarantined, and how many usable ones wait for a person's label, by class
    (the source's own label, mapped) and by source."""
    frame = table.validate(frame, "label")
    quarantined = frame["status"] == table.QUARANTINED
    review = (frame["status"] == table.OK) & (frame["label_status"] == REVIEW)
    rows = []
    for name, by in (("class", frame["label"]), ("source", frame["source"])):
        for value, members in quarantined.groupby(by.fillna("unknown")).groups.items():
            rows.append(
                {
                    "by": name,
                    "value": str(value),
                    "recordings": len(members),
                    "quarantined": int(quarantined[members].sum()),
                    "quarantined_share": float(quarantined[members].mean()),
                    "review": int(review[members].sum()),
                    "review_share": float(review[members].mean()),
                }
            )
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


RATE_COLUMNS = ["by", "value", "recordings", "quarantined", "quarantined_share", "review", "review_share"]


def describe_rates(rates: pd.DataFrame) -> str:
    """One line: the quarantine share of each class (``rates``: :func:`quarantine_rates`)."""
    by_class = rates[rates["by"] == "class"]
    return "quarantined by class: " + ", ".join(
        f"{r.value} {r.quarantined} of {r.recordings} ({r.quarantined_share:.1%})" for r in by_class.itertuples()
    )


def quarantine_bias(rates: pd.DataFrame, alpha: float = 0.05) -> str | None:
    """A warning when curation takes sides (``rates``: :func:`quarantine_rates`): the classes' quarantine
    shares differ beyond chance (Fisher's exact test), so the usable data lost the classes' original make-up."""
    by_class = rates[rates["by"] == "class"].set_index("value")
    if not set(CLASSES) <= set(by_class.index):
        return None
    counts = [
        [int(by_class.at[c, "quarantined"]), int(by_class.at[c, "recordings"] - by_class.at[c, "quarantined"])]
        for c in CLASSES
    ]
    _, p_value = fisher_exact(counts)
    if p_value >= alpha:
        return None
    shares = ", ".join(
        f"{c} {by_class.at[c, 'quarantined_share']:.1%} of {int(by_class.at[c, 'recordings'])}" for c in CLASSES
    )
    return f"curation took sides: quarantined {shares} (Fisher's exact test p = {p_value:.2g})"
