"""External evaluation of a registered model on a source it has never seen."""

import shutil

import pytest

from auscult.errors import InputError
from auscult.evaluate import evaluate, report_html, summary_lines
from auscult.model import export_onnx
from auscult.registry import Registry
from auscult.stages.deploy import model_card
from auscult.stages.validate import Verdict
from pipelines.cli import main


@pytest.fixture
def registry(trained, store, tmp_path):
    export_onnx(trained.model, tmp_path / "candidate.onnx")
    registry = Registry(store)
    metrics = {"threshold": 0.5, "target_specificity": 0.9, "auroc": 0.9}
    version = registry.register(
        (tmp_path / "candidate.onnx").read_bytes(), model_card(Verdict(True, [], metrics, {}), b"t"), {}
    )
    registry.promote(version, "test")
    return registry


def test_a_source_is_scored_per_participant_at_the_registered_operating_point(registry, cohort, labelled):
    result = evaluate(registry, [str(cohort)], bootstrap=200, min_participants_per_class=2, progress=lambda _: None)
    f = result.assessment.figures
    usable = (labelled["status"] == "ok") & (labelled["label_status"] == "labelled")
    assert f["negative_recordings"] + f["positive_recordings"] == usable.sum()
    assert f["positive_participants"] < f["positive_recordings"], "several recordings per participant"
    assert result.quarantined == (labelled["status"] != "ok").sum()
    assert result.operating_point == {"threshold": 0.5, "target_specificity": 0.9}
    assert f["threshold"] == 0.5
    assert f["auroc_ci_low"] <= f["auroc"] <= f["auroc_ci_high"]
    assert f["sensitivity_ci_low"] <= f["sensitivity_at_target_specificity"] <= f["sensitivity_ci_high"]
    assert "95% CI over participants" in "\n".join(summary_lines(result))
    assert "Subgroups" in report_html(result)


def test_an_unknown_version_is_an_input_error(registry, cohort):
    with pytest.raises(InputError, match="no version 'v9999'"):
        evaluate(registry, [str(cohort)], version="v9999", progress=lambda _: None)


def test_the_command_prints_the_figures_and_writes_a_report(registry, cohort, tmp_path, capsys):
    report = tmp_path / "evaluation.html"
    args = ["evaluate", "--source", str(cohort), "--store", registry.store.root, "--workdir", str(tmp_path / "w")]
    assert main([*args, "--report", str(report), "--bootstrap", "100", "--min-participants-per-class", "2"]) == 0
    out = capsys.readouterr().out
    assert "AUROC" in out and "sensitivity" in out and "at the model's operating point (threshold 0.500" in out
    assert report.is_file()


def test_a_source_with_one_class_cannot_be_evaluated(registry, cohort, tmp_path):
    manifest = tmp_path / "one-class.csv"
    files = sorted(cohort.glob("*/*/*.wav"))[:8]
    for file in files:
        shutil.copy(file, tmp_path / f"{file.parent.name}-{file.name}")
    rows = "".join(f"{p.parent.name}-{p.name},negative,{p.parent.name}\n" for p in files)
    manifest.write_text("path,label,participant\n" + rows)
    with pytest.raises(InputError, match="positive: 0 participants"):
        evaluate(registry, [str(manifest)], progress=lambda _: None)


def test_a_verdict_from_a_handful_of_people_is_refused(registry, cohort):
    """Two people, one of each class, would give AUROC 1.000 with an interval of 1.000-1.000."""
    with pytest.raises(InputError, match="fewer than 1000 of each class is no evidence"):
        evaluate(registry, [str(cohort)], min_participants_per_class=1000, progress=lambda _: None)


def test_recordings_the_model_learnt_from_are_left_out(trained, store, tmp_path, cohort, labelled):
    usable = labelled[(labelled["status"] == "ok") & (labelled["label_status"] == "labelled")]
    learnt = sorted(usable["recording_id"])[:5]
    export_onnx(trained.model, tmp_path / "m.onnx")
    registry = Registry(store)
    card = model_card(Verdict(True, [], {"threshold": 0.5, "target_specificity": 0.9}, {}), b"t")
    version = registry.register((tmp_path / "m.onnx").read_bytes(), card, {"recordings": learnt})
    result = evaluate(
        registry, [str(cohort)], version, bootstrap=100, min_participants_per_class=2, progress=lambda _: None
    )
    f = result.assessment.figures
    assert result.seen == 5
    assert f["negative_recordings"] + f["positive_recordings"] == len(usable) - 5
    assert not set(result.assessment.scores["recording_id"]) & set(learnt)
