"""The shortcut audit on tables whose labels are planted in a recording property."""

import numpy as np
import pandas as pd

from auscult import audit


def planted(n: int = 200, seed: int = 0, tied: bool = True) -> pd.DataFrame:
    """Recordings whose label is the device (when ``tied``), as in a set collected on two channels."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    device = np.where(label == 1, "call-center", "telegram") if tied else rng.choice(["call-center", "telegram"], n)
    return pd.DataFrame(
        {
            "recording_id": [f"r{i:04d}" for i in range(n)],
            "participant_id": [f"p{i // 2:04d}" for i in range(n)],
            "label": np.where(label == 1, "positive", "negative"),
            "source": "set",
            "device": device,
            "format": "wav",
            "sample_rate": np.where(device == "call-center", 8000, 48000),
            "channels": 1,
            "sex": rng.choice(["female", "male"], n),
            "age_band": pd.NA,
            "duration_s": rng.uniform(1, 5, n),
            "size_bytes": rng.integers(10_000, 100_000, n),
            "rms_dbfs": rng.normal(-25, 4, n),
            "bandwidth_hz": np.where(device == "call-center", 3_400.0, 16_000.0) * rng.uniform(0.95, 1.05, n),
            "split": np.where(np.arange(n) % 5 == 0, "test", "train"),
        }
    )


def test_a_property_that_is_the_label_is_flagged_and_the_baseline_finds_it():
    table = planted()
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    found = audit.property_audit(train, bootstrap=100).set_index("property")
    assert found.loc["device", "flagged"] and found.loc["sample_rate", "flagged"]
    assert found.loc["device", "auroc"] == 1.0
    assert not found.loc["duration_s", "flagged"] and found.loc["duration_s", "strata"] == audit.BINS
    baseline = audit.metadata_baseline(train, test)
    assert list(baseline.columns) == ["recording_id", "participant_id", "label", "score"]
    from auscult.metrics import roc_auc

    assert roc_auc(baseline["label"], baseline["score"]) == 1.0


def test_properties_unrelated_to_the_label_leave_the_baseline_near_chance():
    table = planted(n=600, tied=False)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    assert not audit.property_audit(train, bootstrap=100)["flagged"].any()
    from auscult.metrics import roc_auc

    baseline = audit.metadata_baseline(train, test)
    assert abs(roc_auc(baseline["label"], baseline["score"]) - 0.5) < 0.15


def test_continuous_properties_are_binned_at_the_training_quintiles():
    table = planted()
    bins = audit.strata(table, "duration_s", table[table["split"] == "train"])
    assert set(bins) == {"q1", "q2", "q3", "q4", "q5"}
    assert audit.strata(table.assign(duration_s=np.nan), "duration_s", table).eq("unknown").all()


def test_a_score_that_is_only_the_stratum_ranks_at_chance_within_strata():
    frame = planted(tied=False)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    scored = audit._scored(test, (test["device"] == "call-center").astype(float).to_numpy())
    # The label follows the device in part: the pooled AUROC rewards knowing the device, the stratified one not.
    scored["label"] = np.where(test["device"] == "call-center", 1, scored["label"])
    summary, strata = audit.within_strata(scored, frame, train, "device", bootstrap=200, min_participants=1)
    assert summary["auroc"] == 0.5 or np.isnan(summary["auroc"])
    assert set(strata["stratum"]) == {"call-center", "telegram"}


def test_within_strata_sees_a_score_that_listens():
    frame = planted(tied=False)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    labels = np.array([c == "positive" for c in test["label"]])
    scored = audit._scored(test, labels + np.random.default_rng(1).normal(0, 0.3, len(test)))
    summary, strata = audit.within_strata(scored, frame, train, "device", bootstrap=200, min_participants=3)
    assert summary["auroc"] > 0.9 and summary["auroc_ci_low"] > 0.8
    assert summary["positive_participants"] + summary["negative_participants"] == test["participant_id"].nunique()
    judged = strata.dropna(subset=["auroc"])
    assert len(judged) == 2 and (judged["auroc_ci_low"] <= judged["auroc"]).all()


def test_a_label_that_is_the_stratum_leaves_nothing_to_judge_within():
    frame = planted(tied=True)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    scored = audit._scored(test, np.random.default_rng(0).random(len(test)))
    summary, _ = audit.within_strata(scored, frame, train, "device", bootstrap=50)
    assert np.isnan(summary["auroc"]) and summary["positive_participants"] == 0


def test_a_lopsided_stratum_counts_its_smaller_class():
    test = pd.DataFrame(
        {
            "recording_id": [f"r{i}" for i in range(62)],
            "participant_id": [f"p{i}" for i in range(62)],
            "label": [1] * 30 + [0] + [1] + [0] * 30,
            "score": np.r_[np.ones(30), 0, 1, np.zeros(30)],
            "device": ["a"] * 31 + ["b"] * 31,
        }
    )
    summary, _ = audit.within_strata(test[["recording_id", "participant_id", "label", "score"]], test, test, "device")
    # Thirty pairs per stratum, resting on one person each: no evidence within strata.
    assert summary["auroc"] == 1.0 and summary["positive_participants"] == summary["negative_participants"] == 0


def test_a_participant_whose_recordings_span_strata_counts_once():
    test = pd.DataFrame(
        {
            "recording_id": [f"r{i}" for i in range(24)],
            "participant_id": [f"p{i // 2}" for i in range(24)],  # two recordings each, one per stratum
            "label": [1] * 12 + [0] * 12,
            "score": np.r_[np.ones(12), np.zeros(12)],
            "device": ["a", "b"] * 12,
        }
    )
    summary, strata = audit.within_strata(test[list(audit.assessment.SCORE_COLUMNS)], test, test, "device")
    assert strata["positive_participants"].sum() == 12 and summary["positive_participants"] == 6
