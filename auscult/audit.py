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
from auscult.task import CLASSES, MIN_PARTICIPANTS_PER_CLASS

CATEGORICAL = ("source", "device", "format", "sample_rate", "channels", "sex", "age_band")
# Binned at the training recordings' quintiles.
CONTINUOUS = ("duration_s", "size_bytes", "rms_dbfs", "bandwidth_hz")
# What the metadata baseline fits on: every property but the estimated bandwidth, which is measured from the sound
# and so carries some of it (a wet, low cough lowers the spectrum's top relative to its peak).
BASELINE = tuple(c for c in (*CATEGORICAL, *CONTINUOUS) if c != "bandwidth_hz")
# The properties of the recording channel: when one of them predicts the label, training deafens the model to it.
CHANNEL = ("device", "format", "sample_rate", "channels", "bandwidth_hz")
NAMES = {
    "sample_rate": "sample rate",
    "age_band": "age band",
    "duration_s": "duration",
    "size_bytes": "file size",
    "rms_dbfs": "level",
    "bandwidth_hz": "bandwidth",
}
BINS = 5
MIN_PER_STRATUM = 3  # a stratum counts as evidence within strata when it holds this many of each class
FOLDS = 5
# A property whose strata alone reach this on the training participants, with an interval above chance, is flagged.
FLAG_AUROC = 0.6


def name(column: str) -> str:
    """The property as a reader says it."""
    return NAMES.get(column, column)


TABLE_HEADER = ("property", "strata", "AUROC alone (training participants)", "95% CI", "flagged")


def table_rows(found: pd.DataFrame) -> list[list]:
    """The audit (:func:`property_audit`) as report rows under :data:`TABLE_HEADER`."""
    return [
        [name(r.property), r.strata, r.auroc, f"{r.auroc_ci_low:.3f}-{r.auroc_ci_high:.3f}", r.flagged]
        for r in found.itertuples()
    ]


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
    interval; ``flagged`` when it reaches :data:`FLAG_AUROC` and the interval's lower bound is above chance.

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
        if groups.nunique() < 2:  # one stratum says nothing (out of fold, its share would even mislead)
            rows.append(
                {"property": column, "strata": 1, "auroc": np.nan, "auroc_ci_low": np.nan}
                | {"auroc_ci_high": np.nan, "flagged": False}
            )
            continue
        auroc = metrics.roc_auc(scored["label"], scored["score"])
        low, high = assessment.auroc_ci(scored, bootstrap, seed)
        rows.append(
            {
                "property": column,
                "strata": int(groups.nunique()),
                "auroc": auroc,
                "auroc_ci_low": low,
                "auroc_ci_high": high,
                "flagged": bool(not np.isnan(auroc) and auroc >= FLAG_AUROC and low > 0.5),
            }
        )
    return pd.DataFrame(rows)


def metadata_baseline(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """A logistic regression on the strata (one-hot) of the :data:`BASELINE` properties, fitted on ``train`` and
    scoring ``test``:
    what a model that never heard a recording makes of the test participants (:data:`assessment.SCORE_COLUMNS`)."""
    from sklearn.linear_model import LogisticRegression

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.get_dummies(pd.DataFrame({column: strata(frame, column, train) for column in BASELINE}))

    fitted = features(train)
    labels = np.array([CLASSES.index(c) for c in train["label"]])
    if len(np.unique(labels)) < 2:
        return _scored(test, np.full(len(test), 0.5))
    model = LogisticRegression(max_iter=1000, C=1.0).fit(fitted.to_numpy(float), labels)
    scoring = features(test).reindex(columns=fitted.columns, fill_value=False)
    return _scored(test, model.predict_proba(scoring.to_numpy(float))[:, 1])


def within_strata(
    scores: pd.DataFrame,
    recordings: pd.DataFrame,
    train: pd.DataFrame,
    column: str,
    bootstrap: int = 1000,
    seed: int = 0,
    min_participants: int = MIN_PARTICIPANTS_PER_CLASS,
) -> tuple[dict, pd.DataFrame]:
    """How well ``scores`` (:data:`assessment.SCORE_COLUMNS`) separate the classes *within* the strata of
    ``column`` (defined on the training recordings ``train``; values from ``recordings``).

    Returns the stratified AUROC (positives ranked only against negatives of their own stratum) with its
    participant interval and its evidence: the participants of each class in strata that hold at least
    :data:`MIN_PER_STRATUM` of each class (two strata of 30 positives and one negative each rest on two
    people, not sixty, and count nothing); and one row per stratum: its counts and, where it holds
    ``min_participants`` of each class, its own AUROC and interval.
    """
    joined = scores.merge(recordings[["recording_id", column]], on="recording_id", how="left")
    groups = strata(joined, column, train).to_numpy()
    labels, values = joined["label"].to_numpy(), joined["score"].to_numpy()
    participants = assessment.participant_groups(joined)
    auroc = metrics.stratified_auroc(labels, values, groups)
    low, high = (
        metrics.bootstrap_ci(
            lambda pick: metrics.stratified_auroc(labels[pick], values[pick], groups[pick]),
            participants,
            n=bootstrap,
            seed=seed,
        )
        if not np.isnan(auroc)
        else (float("nan"), float("nan"))
    )
    rows, counted = [], np.zeros(len(joined), dtype=bool)
    for stratum in sorted(set(groups)):
        members = groups == stratum
        found = assessment.counts(joined[members])
        people = {cls: found[f"{cls}_participants"] for cls in CLASSES}
        counted |= members & (min(people.values()) >= MIN_PER_STRATUM)
        enough = min(people.values()) >= min_participants
        stratum_low, stratum_high = (
            metrics.auroc_ci(labels[members], values[members], participants[members], n=bootstrap, seed=seed)
            if enough
            else (float("nan"), float("nan"))
        )
        rows.append(
            {"property": column, "stratum": stratum, **found}
            | {
                "auroc": metrics.roc_auc(labels[members], values[members]) if enough else float("nan"),
                "auroc_ci_low": stratum_low,
                "auroc_ci_high": stratum_high,
            }
        )
    summary = {"property": column, "auroc": auroc, "auroc_ci_low": low, "auroc_ci_high": high}
    evidence = assessment.counts(joined[counted])  # a participant whose recordings span strata counts once
    summary |= {f"{cls}_participants": evidence[f"{cls}_participants"] for cls in CLASSES}
    return summary, pd.DataFrame(rows)


def acoustic_baseline(train: pd.DataFrame, test: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """A simple listener for context: a logistic regression on per-recording MFCC statistics (``features``,
    indexed by recording id: :func:`mfcc_statistics`), fitted on ``train`` and scoring ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.array([CLASSES.index(c) for c in train["label"]])
    if len(np.unique(labels)) < 2:
        return _scored(test, np.full(len(test), 0.5))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1))
    model.fit(features.loc[train["recording_id"]].to_numpy(), labels)
    return _scored(test, model.predict_proba(features.loc[test["recording_id"]].to_numpy())[:, 1])


def mfcc_statistics(windows: np.ndarray, index: pd.DataFrame, batch: int = 256) -> pd.DataFrame:
    """Mean and standard deviation over time of 20 MFCCs over the whole band (what the sound itself carries),
    averaged over each recording's windows (``index``: the windows' recording ids, in order): one row per
    recording id."""
    import torch
    import torchaudio

    from auscult.audio import SAMPLE_RATE

    transform = torchaudio.transforms.MFCC(
        SAMPLE_RATE, n_mfcc=20, melkwargs={"n_fft": 512, "hop_length": 256, "n_mels": 40}
    )
    rows = []
    with torch.inference_mode():
        for start in range(0, len(index), batch):
            # One channel per window: the decibel floor (80 dB under the loudest value) is then each window's own,
            # not the batch's.
            coefficients = transform(torch.from_numpy(np.asarray(windows[start : start + batch]))[:, None, :])[:, 0]
            rows.append(torch.cat([coefficients.mean(dim=-1), coefficients.std(dim=-1)], dim=1).numpy())
    values = np.concatenate(rows) if rows else np.zeros((0, 40))
    return pd.DataFrame(values, index=index["recording_id"].to_numpy()).groupby(level=0).mean()
