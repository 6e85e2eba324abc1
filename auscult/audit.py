"""Could a model that never listened have done as well? Recording properties known without listening, how
well each predicts the label, and a model trained on them alone.

A screening model can learn the collection channel (an 8 kHz call centre with more positives, a 48 kHz app
with fewer) instead of the cough. These properties are what would give that away; validate sets the model's
figures beside those of :func:`metadata_baseline` on the same test participants.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auscult import assessment, metrics
from auscult.task import CLASSES

CATEGORICAL = ("source", "device", "format", "sample_rate", "channels", "sex", "age_band")
CONTINUOUS = ("duration_s", "size_bytes", "rms_dbfs")  # binned at the training recordings' quintiles
BINS = 5
FOLDS = 5
FLAG_AUROC = 0.6  # a property whose strata alone reach this on the training participants is flagged


def strata(frame: pd.DataFrame, column: str, reference: pd.DataFrame) -> pd.Series:
    """Each recording's stratum of ``column``: its value, or its quintile of ``reference`` for a measure."""
    if column in CONTINUOUS:
        values = reference[column].dropna().astype(float)
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1])) if len(values) else np.array([])
        binned = np.searchsorted(edges, frame[column].astype(float).fillna(-np.inf), side="right")
        return pd.Series([f"q{b + 1}" for b in binned], index=frame.index).where(frame[column].notna(), "unknown")
    return frame[column].astype("string").fillna("unknown").astype(str)


def _scored(frame: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "recording_id": frame["recording_id"].to_numpy(),
            "participant_id": frame["participant_id"].to_numpy(),
            "label": [CLASSES.index(c) for c in frame["label"]],
            "score": score,
        }
    )


def property_audit(train: pd.DataFrame, bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How well each property's strata predict the label on the training recordings (``train``: usable,
    labelled, with its participants): the AUROC of each stratum's share of positives, with a participant
    interval; ``flagged`` when it reaches :data:`FLAG_AUROC`.

    A recording is scored by the share of positives in its stratum among *other* participants (five folds of
    participants), so that a property with many strata does not look predictive by fitting noise.
    """
    rows = []
    positive = pd.Series([c == CLASSES[1] for c in train["label"]], index=train.index, dtype=float)
    _, person = np.unique(assessment.participant_groups(_scored(train, np.zeros(len(train)))), return_inverse=True)
    fold = person % FOLDS
    for column in (*CATEGORICAL, *CONTINUOUS):
        groups = strata(train, column, train)
        share = np.zeros(len(train))
        for k in range(FOLDS):
            held_out = fold == k
            others = positive[~held_out].groupby(groups[~held_out]).mean()
            fallback = positive[~held_out].mean() if (~held_out).any() else 0.5
            share[held_out] = groups[held_out].map(others).fillna(fallback).to_numpy()
        scored = _scored(train, share)
        auroc = metrics.roc_auc(scored["label"], scored["score"])
        low, high = metrics.auroc_ci(
            scored["label"].to_numpy(),
            scored["score"].to_numpy(),
            assessment.participant_groups(scored),
            n=bootstrap,
            seed=seed,
        )
        rows.append(
            {
                "property": column,
                "strata": int(groups.nunique()),
                "auroc": auroc,
                "auroc_ci_low": low,
                "auroc_ci_high": high,
                "flagged": bool(not np.isnan(auroc) and auroc >= FLAG_AUROC),
            }
        )
    return pd.DataFrame(rows)


def metadata_baseline(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """A logistic regression on every property's strata (one-hot), fitted on ``train`` and scoring ``test``:
    what a model that never heard a recording makes of the test participants (:data:`assessment.SCORE_COLUMNS`)."""
    from sklearn.linear_model import LogisticRegression

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.get_dummies(
            pd.DataFrame({column: strata(frame, column, train) for column in (*CATEGORICAL, *CONTINUOUS)})
        )

    fitted = features(train)
    labels = np.array([CLASSES.index(c) for c in train["label"]])
    if len(np.unique(labels)) < 2:
        return _scored(test, np.full(len(test), 0.5))
    model = LogisticRegression(max_iter=1000, C=1.0).fit(fitted.to_numpy(float), labels)
    scoring = features(test).reindex(columns=fitted.columns, fill_value=False)
    return _scored(test, model.predict_proba(scoring.to_numpy(float))[:, 1])
