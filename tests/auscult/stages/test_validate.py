from html import escape

import pytest

from auscult import report
from auscult.registry import Registry
from auscult.stages.validate import ValidateConfig, Verdict, report_html, validate


@pytest.fixture(scope="module")
def validation(trained, prepared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("validate")
    return validate(trained.model, prepared, folder, None, ValidateConfig(min_auroc=0.5, bootstrap=200)), folder


def test_metrics_and_parity(validation):
    result, folder = validation
    assert len(Verdict.onnx(folder)) > 10_000
    m = result.metrics
    assert m["auroc_ci_low"] <= m["auroc"] <= m["auroc_ci_high"]
    assert m["onnx_max_abs_difference"] < 1e-4
    assert 0 <= m["sensitivity_at_target_specificity"] <= 1
    assert result.confusion.sum() == m["test_recordings"]
    assert set(result.subgroups["attribute"]) >= {"sex", "device"}
    assert set(result.reference["input"]) == {"duration_s", "rms_dbfs", "zero_crossing_rate", "spectral_centroid_hz"}


def test_the_verdict_is_saved_beside_the_model_for_deploy(validation):
    result, folder = validation
    saved = Verdict.load(folder)
    assert saved == result.verdict
    assert saved.reference["stats_version"] == result.reference["stats_version"]


def test_reasons_cover_every_check(validation):
    result, _ = validation
    text = "\n".join(result.reasons)
    for words in ("AUROC", "ONNX", "serving runtime", "production"):
        assert words in text


def test_an_unreachable_bar_is_not_blessed(trained, prepared, tmp_path):
    result = validate(trained.model, prepared, tmp_path, None, ValidateConfig(min_auroc=1.01, bootstrap=50))
    assert not result.blessed
    assert any(r.startswith("FAIL: test AUROC") for r in result.reasons)


def test_comparison_with_production(trained, prepared, tmp_path, store, validation):
    _, folder = validation
    registry = Registry(store)
    registry.promote(registry.register(Verdict.onnx(folder), {}, {}), "test")
    result = validate(
        trained.model, prepared, tmp_path / "candidate", registry, ValidateConfig(min_auroc=0.5, bootstrap=50)
    )
    assert result.metrics["production_auroc"] == pytest.approx(result.metrics["auroc"], abs=1e-6)
    assert any("against production" in r for r in result.reasons)


def test_report_has_plots_and_verdict(validation, trained):
    result, _ = validation
    html = report_html(result, trained.history)
    assert "data:image/png;base64" in html
    assert report.verdict(result.blessed, "blessed" if result.blessed else "not blessed") in html
    assert all(escape(reason) in html for reason in result.reasons)
