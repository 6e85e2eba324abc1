import json
from html import escape

import pytest

from auscult import report
from auscult.registry import Registry
from auscult.stages.prep import Prepared
from auscult.stages.validate import ValidateConfig, Verdict, report_html, summary_markdown, validate

SMALL = {"min_participants_per_class": 1, "bootstrap": 200}  # the test cohort is small


@pytest.fixture(scope="module")
def validation(trained, prepared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("validate")
    return validate(trained, prepared, folder, None, ValidateConfig(min_auroc=0.5, **SMALL)), folder


def test_metrics_and_parity(validation):
    result, folder = validation
    assert len(Verdict.onnx(folder)) > 10_000
    m = result.metrics
    assert m["auroc_ci_low"] <= m["auroc"] <= m["auroc_ci_high"]
    assert m["onnx_max_abs_difference"] < 1e-4
    assert 0 <= m["sensitivity_at_target_specificity"] <= 1
    assert m["sensitivity_ci_low"] <= m["sensitivity_at_target_specificity"] <= m["sensitivity_ci_high"]
    assert result.assessment.confusion.sum() == m["test_negative_recordings"] + m["test_positive_recordings"]
    assert set(result.assessment.subgroups["attribute"]) >= {"sex", "device"}
    assert {"positive_participants", "negative_recordings"} <= set(result.assessment.subgroups.columns)
    assert set(result.reference["input"]) == {"duration_s", "rms_dbfs", "zero_crossing_rate", "spectral_centroid_hz"}


def test_every_split_reports_participants_and_recordings_per_class(validation):
    result, _ = validation
    assert set(result.splits["split"]) == {"train", "validation", "test"}
    for row in result.splits.itertuples():
        assert 0 < row.positive_participants <= row.positive_recordings
        assert 0 < row.negative_participants <= row.negative_recordings


def test_the_verdict_is_saved_beside_the_model_for_deploy(validation):
    result, folder = validation
    saved = Verdict.load(folder)
    assert json.dumps(saved.__dict__) == json.dumps(result.verdict.__dict__)


def test_reasons_cover_every_check(validation):
    result, _ = validation
    text = "\n".join(result.reasons)
    for words in ("validation:", "test:", "lower bound", "ONNX", "serving runtime", "production"):
        assert words in text


def test_an_unreachable_bar_is_not_blessed(trained, prepared, tmp_path):
    result = validate(trained, prepared, tmp_path, None, ValidateConfig(min_auroc=1.01, **SMALL))
    assert not result.blessed
    assert any(r.startswith("FAIL: test AUROC") for r in result.reasons)


def test_a_verdict_drawn_from_two_test_recordings_is_never_blessed(trained, prepared, tmp_path):
    """Whatever its AUROC: one test recording of each class is no evidence."""
    test = prepared.index[prepared.index["split"] == "test"]
    keep = [test.loc[test["label"] == c, "recording_id"].iloc[0] for c in (0, 1)]
    index = prepared.index.copy()
    index.loc[(index["split"] == "test") & ~index["recording_id"].isin(keep), "split"] = "train"
    two = Prepared(prepared.table, prepared.windows, index, prepared.audit)
    result = validate(trained, two, tmp_path, None, ValidateConfig(min_auroc=0.0, bootstrap=200))
    assert not result.blessed
    assert result.metrics["test_positive_recordings"] + result.metrics["test_negative_recordings"] == 2
    assert any(r.startswith("FAIL: test: 1 negative participants") and "minimum of 10" in r for r in result.reasons)


def test_comparison_with_production_is_paired_on_the_same_participants(trained, prepared, tmp_path, store, validation):
    _, folder = validation
    registry = Registry(store)
    registry.promote(registry.register(Verdict.onnx(folder), {}, {}), "test")
    result = validate(trained, prepared, tmp_path / "candidate", registry, ValidateConfig(min_auroc=0.5, **SMALL))
    m = result.metrics
    assert m["production_auroc"] == pytest.approx(m["auroc"], abs=1e-6)
    assert m["auroc_difference_ci_low"] == pytest.approx(0, abs=1e-6) == m["auroc_difference_ci_high"]
    assert any("against production" in r and "lower bound" in r for r in result.reasons if r.startswith("pass"))


def test_report_has_plots_verdict_and_counts(validation, trained):
    result, _ = validation
    html = report_html(result, trained.history)
    assert "data:image/png;base64" in html
    assert report.verdict(result.blessed, "blessed" if result.blessed else "not blessed") in html
    assert all(escape(reason) in html for reason in result.reasons)
    assert "95% CI over participants" in html and "Operating points" in html and "positive participants" in html
    assert "quarantine and review by class and source" in html and "never listened" in html
    assert "a simple listener (MFCC statistics)" in html and "recording properties alone" in html


def test_the_kfp_summary_is_markdown_with_the_verdict_and_the_scorers(validation):
    result, _ = validation
    text = summary_markdown(result)
    assert text.startswith("# BLESSED" if result.blessed else "# NOT BLESSED")
    assert "| this model |" in text and "| recording properties alone |" in text
    assert all(f"- {reason}" in text for reason in result.reasons)


def test_the_shortcut_checks_gate_and_the_notes_say_what_was_seen(validation):
    result, _ = validation
    m = result.metrics
    margin = next(r for r in result.reasons if "never listened" in r)
    assert margin.startswith("pass" if m["margin_over_metadata_ci_low"] >= 0.05 else "FAIL")
    assert any(r.startswith("note: quarantined by class:") for r in result.reasons)
    assert any(r.startswith("note: AUROC per device:") for r in result.reasons)
    # One check per group of flagged properties, each naming the property and its AUROC on the training participants.
    judged = [r for r in result.reasons if r.startswith(("pass: ", "FAIL: ")) and "on the training participants" in r]
    assert len(judged) == len(result.within) and (len(judged) > 0) == bool(result.audit["flagged"].any())
    for prop in result.within["property"]:
        assert m[f"stratified_auroc_{prop}_ci_low"] <= m[f"stratified_auroc_{prop}"]


def test_a_model_that_only_matches_the_properties_is_not_blessed(trained, prepared, tmp_path):
    result = validate(
        trained, prepared, tmp_path, None, ValidateConfig(min_auroc=0.5, min_margin_over_metadata=1.1, **SMALL)
    )
    assert not result.blessed
    assert any(
        r.startswith("FAIL: recording properties alone") and "required margin of 1.1" in r for r in result.reasons
    )


def test_the_reference_names_what_the_model_learnt_from(validation, prepared):
    result, _ = validation
    learnt = prepared.table.loc[prepared.table["split"].isin(["train", "validation"]), "recording_id"]
    assert result.reference["recordings"] == sorted(learnt)
    assert not set(result.reference["recordings"]) & set(result.assessment.scores["recording_id"])


def test_the_model_is_set_beside_one_that_never_listened(validation):
    result, _ = validation
    m = result.metrics
    assert 0 <= m["metadata_auroc_ci_low"] <= m["metadata_auroc"] <= m["metadata_auroc_ci_high"] <= 1
    assert m["margin_over_metadata"] == pytest.approx(m["auroc"] - max(0.5, m["metadata_auroc"]))
    assert any("recording properties alone (a model that never listened)" in r for r in result.reasons)
    assert {"device", "sample_rate", "duration_s", "bandwidth_hz"} <= set(result.audit["property"])
