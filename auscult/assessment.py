"""How well scores separate the classes, with statistics per participant: what validate judges a candidate
on and what ``auscult evaluate`` reports on anyone's recordings.

Every interval is a bootstrap over participants (a participant is drawn with all of their recordings), and
every table says how many participants and recordings of each class stand behind its figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from auscult import metrics, report
from auscult.task import CLASSES

SUBGROUPS = ("sex", "age_band", "device", "source", "sound_type")
SCORE_COLUMNS = ("recording_id", "participant_id", "label", "score")  # label: class index
_COUNTED = ("_participants", "_recordings")


def participant_groups(scores: pd.DataFrame) -> np.ndarray:
    """A participant label per recording that does not depend on the pseudonymisation key (the id of the
    participant's first recording), so that resamples, and hence intervals, are the same in any workspace."""
    return scores.groupby("participant_id")["recording_id"].transform("min").to_numpy()


def auroc_ci(scores: pd.DataFrame, bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The participant interval of the AUROC of ``scores`` (:data:`SCORE_COLUMNS`)."""
    labels, values = scores["label"].to_numpy(), scores["score"].to_numpy()
    return metrics.auroc_ci(labels, values, participant_groups(scores), n=bootstrap, seed=seed)


def counts(scores: pd.DataFrame) -> dict[str, int]:
    """Participants and recordings of each class."""
    out = {}
    for index, cls in enumerate(CLASSES):
        members = scores[scores["label"] == index]
        out[f"{cls}_participants"] = int(members["participant_id"].nunique())
        out[f"{cls}_recordings"] = len(members)
    return out


def describe_counts(found: dict[str, int]) -> str:
    return ", ".join(
        f"{int(found[f'{cls}_participants'])} {cls} participants ({int(found[f'{cls}_recordings'])} recordings)"
        for cls in CLASSES
    )


@dataclass
class Assessment:
    figures: dict[str, float]  # auroc and its interval, sensitivity/specificity at the threshold, counts, ...
    operating_points: pd.DataFrame  # per target specificity: threshold, sensitivity, specificity, intervals
    subgroups: pd.DataFrame  # per attribute value: counts per class, AUROC and its interval
    roc: tuple[np.ndarray, np.ndarray, np.ndarray]
    confusion: np.ndarray  # at the operating threshold
    scores: pd.DataFrame
    notes: list[str]  # what a reader must know to read the figures


def _rate_ci(labels: np.ndarray, values: np.ndarray, groups: np.ndarray, threshold: float, which: int, **kw):
    def rate(pick: np.ndarray) -> float:
        return metrics.sensitivity_specificity(labels[pick], values[pick], threshold)[which]

    return metrics.bootstrap_ci(rate, groups, **kw)


def assess(
    scores: pd.DataFrame,
    recordings: pd.DataFrame,
    thresholds: dict[float, float],
    target_specificity: float,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Assessment:
    """Participant-level figures of ``scores`` (one row per recording, :data:`SCORE_COLUMNS`).

    ``thresholds``: target specificity -> the threshold chosen for it elsewhere (on validation participants,
    or recorded in a model card); ``target_specificity`` names the operating one. ``recordings`` supplies the
    subgroup attributes by recording id.
    """
    labels, values = scores["label"].to_numpy(), scores["score"].to_numpy()
    groups = participant_groups(scores)
    kw = {"n": bootstrap, "seed": seed}
    auroc = metrics.roc_auc(labels, values)
    low, high = metrics.auroc_ci(labels, values, groups, **kw)
    points = []
    for specificity, threshold in sorted(thresholds.items()):
        sensitivity, achieved = metrics.sensitivity_specificity(labels, values, threshold)
        points.append(
            {
                "target_specificity": specificity,
                "threshold": threshold,
                "sensitivity": sensitivity,
                "sensitivity_ci": _rate_ci(labels, values, groups, threshold, 0, **kw),
                "specificity": achieved,
                "specificity_ci": _rate_ci(labels, values, groups, threshold, 1, **kw),
            }
        )
    operating = next(p for p in points if p["target_specificity"] == target_specificity)
    figures = {
        "auroc": auroc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "target_specificity": target_specificity,
        "threshold": operating["threshold"],
        "sensitivity_at_target_specificity": operating["sensitivity"],
        "sensitivity_ci_low": operating["sensitivity_ci"][0],
        "sensitivity_ci_high": operating["sensitivity_ci"][1],
        "specificity_at_threshold": operating["specificity"],
        "specificity_ci_low": operating["specificity_ci"][0],
        "specificity_ci_high": operating["specificity_ci"][1],
        "brier": metrics.brier_score(labels, values),
        "ece": metrics.expected_calibration_error(labels, values),
        **counts(scores),
    }
    notes = []
    joined = scores.merge(recordings[["recording_id", *SUBGROUPS]], on="recording_id", how="left")
    for source, group in joined.groupby(joined["source"].fillna("unknown")):
        if group["participant_id"].nunique() == len(group) and len(group) > 1:
            notes.append(
                f"note: {source}: every participant has one recording (the source names no participants, or each "
                "gave one), so participant and recording statistics coincide"
            )
    predicted = (values >= operating["threshold"]).astype(int)
    return Assessment(
        figures={k: float(v) for k, v in figures.items()},
        operating_points=pd.DataFrame(points),
        subgroups=subgroup_metrics(joined, bootstrap, seed),
        roc=metrics.roc_curve(labels, values),
        confusion=metrics.confusion_matrix(labels, predicted, len(CLASSES)),
        scores=scores,
        notes=notes,
    )


def subgroup_metrics(joined: pd.DataFrame, bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUROC with a participant interval within each value of each attribute, and the counts behind it."""
    rows = []
    for column in SUBGROUPS:
        for value, group in joined.groupby(joined[column].fillna("unknown")):
            labels, values = group["label"].to_numpy(), group["score"].to_numpy()
            has_both = len(np.unique(labels)) == 2
            low, high = auroc_ci(group, bootstrap, seed) if has_both else (float("nan"), float("nan"))
            rows.append(
                {"attribute": column, "value": str(value), **counts(group), "auroc": metrics.roc_auc(labels, values)}
                | {"auroc_ci_low": low, "auroc_ci_high": high}
            )
    columns = ["attribute", "value", *counts(joined.iloc[:0]), "auroc", "auroc_ci_low", "auroc_ci_high"]
    return pd.DataFrame(rows, columns=columns)


def _interval(low: float, high: float, digits: int = 2) -> str:
    return "-" if np.isnan(low) else f"{low:.{digits}f}-{high:.{digits}f}"


def sections(result: Assessment, what: str) -> list[tuple[str, str]]:
    """Report sections: the figures, the operating points, the confusion matrix and the subgroups."""
    f = result.figures
    headline = [
        ["AUROC", f"{f['auroc']:.3f}", _interval(f["auroc_ci_low"], f["auroc_ci_high"], 3)],
        [
            f"sensitivity at threshold {f['threshold']:.3f}",
            f"{f['sensitivity_at_target_specificity']:.3f}",
            _interval(f["sensitivity_ci_low"], f["sensitivity_ci_high"]),
        ],
        [
            "specificity at that threshold",
            f"{f['specificity_at_threshold']:.3f}",
            _interval(f["specificity_ci_low"], f["specificity_ci_high"]),
        ],
        ["Brier score", f"{f['brier']:.3f}", "-"],
        ["expected calibration error", f"{f['ece']:.3f}", "-"],
    ]
    points = [
        [
            f"{p.target_specificity:.2f}",
            f"{p.threshold:.3f}",
            f"{p.sensitivity:.3f} ({_interval(*p.sensitivity_ci)})",
            f"{p.specificity:.3f} ({_interval(*p.specificity_ci)})",
        ]
        for p in result.operating_points.itertuples()
    ]
    subgroups = [
        [
            r.attribute,
            r.value,
            *(int(getattr(r, f"{c}_{k}")) for c in CLASSES for k in ("participants", "recordings")),
            "-" if np.isnan(r.auroc) else f"{r.auroc:.3f}",
            _interval(r.auroc_ci_low, r.auroc_ci_high),
        ]
        for r in result.subgroups.itertuples()
    ]
    return [
        (
            f"Figures on {what}: {describe_counts({k: int(v) for k, v in f.items() if k.endswith(_COUNTED)})}",
            report.table(["figure", "value", "95% CI over participants"], headline) + report.bullets(result.notes),
        ),
        (
            "Operating points (thresholds chosen on validation participants)",
            report.table(["target specificity", "threshold", "sensitivity (95% CI)", "specificity (95% CI)"], points),
        ),
        (
            "Confusion matrix at the operating threshold (recordings)",
            report.table(
                ["true \\ predicted", *CLASSES],
                [[c, *row] for c, row in zip(CLASSES, result.confusion.tolist(), strict=True)],
            ),
        ),
        (
            "Subgroups",
            report.table(
                [
                    "attribute",
                    "value",
                    *(f"{c} {k}" for c in CLASSES for k in ("participants", "recordings")),
                    "AUROC",
                    "95% CI",
                ],
                subgroups,
            ),
        ),
    ]
