"""validate: is the trained model fit to serve? Metrics with confidence intervals, torch-vs-ONNX parity, a
check in the serving runtime, and a comparison with the model in production. Blessed, or not, with reasons.

Every figure is computed on the ONNX model, the artifact that will be served, at recording level (window
probabilities averaged), on the held-out test participants.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auscult import audio, layout, metrics, report
from auscult.errors import InputError
from auscult.model import ScreeningNet, export_onnx
from auscult.registry import Registry
from auscult.serving.runtime import Predictor
from auscult.stages.prep import Prepared, SplitWindows
from auscult.stages.train import per_recording
from auscult.task import CLASSES

SUBGROUPS = ("sex", "age_band", "device", "source", "sound_type")


@dataclass(frozen=True)
class ValidateConfig:
    min_auroc: float = 0.80
    target_specificity: float = 0.90
    parity_tolerance: float = 1e-4
    max_regression: float = 0.02  # how much worse than production a candidate may be on the same test set
    bootstrap: int = 1000
    seed: int = 0


VERDICT_FILE = "validation.json"


@dataclass
class Verdict:
    """What validate leaves in its model folder beside the ONNX model (the layout of a registry version, see
    :mod:`auscult.layout`): blessed or not, why, the figures, and the training reference."""

    blessed: bool
    reasons: list[str]
    metrics: dict[str, float]
    reference: dict

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        (folder / layout.REFERENCE_FILE).write_text(json.dumps(self.reference))
        figures = {"blessed": self.blessed, "reasons": self.reasons, "metrics": self.metrics}
        (folder / VERDICT_FILE).write_text(json.dumps(figures))

    @classmethod
    def load(cls, folder: str | Path) -> Verdict:
        folder = Path(folder)
        figures = json.loads((folder / VERDICT_FILE).read_text())
        reference = json.loads((folder / layout.REFERENCE_FILE).read_text())
        return cls(figures["blessed"], figures["reasons"], figures["metrics"], reference)

    @staticmethod
    def onnx(folder: str | Path) -> bytes:
        """The ONNX model that was validated."""
        return (Path(folder) / layout.ONNX_FILE).read_bytes()


@dataclass
class Validation:
    blessed: bool
    reasons: list[str]
    metrics: dict[str, float]
    roc: tuple[np.ndarray, np.ndarray, np.ndarray]
    confusion: np.ndarray
    subgroups: pd.DataFrame
    scores: pd.DataFrame  # test recordings: recording_id, label, score
    reference: dict = field(default_factory=dict)  # what monitoring compares production traffic with

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.blessed, self.reasons, self.metrics, self.reference)


def onnx_scores(predictor: Predictor, windows: SplitWindows, index: pd.DataFrame, batch: int = 64) -> pd.DataFrame:
    probabilities = [predictor.windows_scores(windows[s : s + batch])[:, 1] for s in range(0, len(windows), batch)]
    flat = np.concatenate(probabilities) if probabilities else np.zeros(0)
    return per_recording(index, flat)


def parity(model: ScreeningNet, predictor: Predictor, windows: SplitWindows) -> float:
    """Max |torch - ONNX| over real windows and over lengths the export never saw."""
    sample = np.asarray(windows[:16], dtype=np.float32)
    lengths = (int(1.3 * audio.SAMPLE_RATE), sample.shape[1], int(3.7 * audio.SAMPLE_RATE))
    worst = 0.0
    with torch.inference_mode():
        for length in lengths:
            batch = np.resize(sample, (len(sample), length)).astype(np.float32)
            expected = model(torch.from_numpy(batch)).numpy()
            worst = max(worst, float(np.abs(expected - predictor.windows_scores(batch)).max()))
    return worst


def serving_check(predictor: Predictor, windows: SplitWindows) -> str | None:
    """Send one request the way a client would (an encoded file) through the serving runtime."""
    message = {"binData": base64.b64encode(audio.encode_wav(np.asarray(windows[0]))).decode()}
    answer = predictor.answer(message)
    response = predictor.response(answer)
    probabilities = response["data"]["ndarray"][0]
    if len(probabilities) != len(CLASSES) or abs(sum(probabilities) - 1) > 1e-4:
        return f"serving runtime answered {probabilities}, not {len(CLASSES)} probabilities summing to 1"
    return None


def subgroup_metrics(scores: pd.DataFrame, recordings: pd.DataFrame) -> pd.DataFrame:
    joined = scores.merge(recordings[["recording_id", *SUBGROUPS]], on="recording_id")
    rows = []
    for column in SUBGROUPS:
        for value, group in joined.groupby(joined[column].fillna("unknown")):
            rows.append(
                {
                    "attribute": column,
                    "value": str(value),
                    "recordings": len(group),
                    "positives": int(group["label"].sum()),
                    "auroc": metrics.roc_auc(group["label"].to_numpy(), group["score"].to_numpy()),
                }
            )
    return pd.DataFrame(rows, columns=["attribute", "value", "recordings", "positives", "auroc"])


def reference_of(prepared: Prepared, scores: pd.DataFrame, limit: int = 2000) -> dict:
    """Training-time distributions of the input statistics and of the predicted positive probability."""
    train = prepared.table[prepared.table["split"] == "train"]
    return {
        "stats_version": audio.STATS_VERSION,
        "input": {name: train[f"input_{name}"].dropna().astype(float).tolist()[:limit] for name in audio.STAT_NAMES},
        "prediction": scores["score"].astype(float).tolist()[:limit],
    }


def validate(
    model: ScreeningNet,
    prepared: Prepared,
    folder: str | Path,
    registry: Registry | None = None,
    config: ValidateConfig = ValidateConfig(),
) -> Validation:
    """Export ``model`` to ONNX in ``folder``, judge it, and save the :class:`Verdict` beside it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model, folder / layout.ONNX_FILE)
    predictor = Predictor(Verdict.onnx(folder), "candidate")
    test_windows, test_index = prepared.split("test")
    validation_windows, validation_index = prepared.split("validation")
    if len(test_windows) == 0:
        raise InputError("the test split is empty: too few labelled participants to validate; add recordings")
    scores = onnx_scores(predictor, test_windows, test_index)
    labels, values = scores["label"].to_numpy(), scores["score"].to_numpy()
    auroc = metrics.roc_auc(labels, values)
    low, high = metrics.bootstrap_ci(labels, values, n=config.bootstrap, seed=config.seed)
    # The operating threshold is chosen on validation participants, then applied to test ones.
    chosen_on = onnx_scores(predictor, validation_windows, validation_index) if len(validation_windows) else scores
    threshold = metrics.threshold_at_specificity(
        chosen_on["label"].to_numpy(), chosen_on["score"].to_numpy(), config.target_specificity
    )
    sensitivity, specificity = metrics.sensitivity_specificity(labels, values, threshold)
    max_difference = parity(model, predictor, test_windows)
    figures = {
        "auroc": auroc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "sensitivity_at_target_specificity": sensitivity,
        "specificity_at_threshold": specificity,
        "target_specificity": config.target_specificity,
        "threshold": threshold,
        "brier": metrics.brier_score(labels, values),
        "ece": metrics.expected_calibration_error(labels, values),
        "onnx_max_abs_difference": max_difference,
        "test_recordings": float(len(scores)),
        "test_positives": float(labels.sum()),
    }
    reasons, blessed = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal blessed
        blessed &= passed
        reasons.append(("pass: " if passed else "FAIL: ") + text)

    check(
        not np.isnan(auroc) and auroc >= config.min_auroc,
        f"test AUROC {auroc:.3f} (95% CI {low:.3f}-{high:.3f}) against a minimum of {config.min_auroc}",
    )
    check(
        max_difference <= config.parity_tolerance,
        f"torch vs ONNX max abs difference {max_difference:.2e} (tolerance {config.parity_tolerance:.0e})",
    )
    problem = serving_check(predictor, test_windows)
    check(problem is None, problem or "the serving runtime loads the model and answers a request")
    pointer = registry.production() if registry else None
    if pointer:
        production = onnx_scores(
            Predictor(registry.onnx(pointer["version"]), pointer["version"]), test_windows, test_index
        )
        production_auroc = metrics.roc_auc(production["label"].to_numpy(), production["score"].to_numpy())
        figures["production_auroc"] = production_auroc
        check(
            np.isnan(production_auroc) or auroc >= production_auroc - config.max_regression,
            f"AUROC {auroc:.3f} against production {pointer['version']} at {production_auroc:.3f} "
            f"on the same test recordings (allowed regression {config.max_regression})",
        )
    else:
        reasons.append("pass: no model in production yet, nothing to compare with")
    predicted = (values >= threshold).astype(int)
    result = Validation(
        blessed=bool(blessed),
        reasons=reasons,
        metrics={k: float(v) for k, v in figures.items()},
        roc=metrics.roc_curve(labels, values),
        confusion=metrics.confusion_matrix(labels, predicted, len(CLASSES)),
        subgroups=subgroup_metrics(scores, prepared.table),
        scores=scores,
        reference=reference_of(prepared, scores),
    )
    result.verdict.save(folder)
    return result


def report_html(result: Validation, history: list[dict] | None = None) -> str:
    import matplotlib.pyplot as plt

    fpr, tpr, _ = result.roc
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(fpr, tpr, color="#4c72b0")
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(title=f"ROC (AUROC {result.metrics['auroc']:.3f})", xlabel="1 - specificity", ylabel="sensitivity")
    labels, scores = result.scores["label"].to_numpy(), result.scores["score"].to_numpy()
    edges = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, 9)
    filled = [b for b in range(10) if (which == b).any()]
    axes[1].plot([scores[which == b].mean() for b in filled], [labels[which == b].mean() for b in filled], "o-")
    axes[1].plot([0, 1], [0, 1], ":", color="grey")
    axes[1].set(title=f"Calibration (ECE {result.metrics['ece']:.3f})", xlabel="predicted", ylabel="observed")
    if history:
        axes[2].plot([h["epoch"] for h in history], [h["loss"] for h in history], label="training loss")
        axes[2].plot([h["epoch"] for h in history], [h["validation_auroc"] for h in history], label="validation AUROC")
        axes[2].legend()
        axes[2].set(title="Training", xlabel="epoch")
    plots = report.figure(fig)
    return report.page(
        "auscult model validation",
        [
            (
                "Verdict",
                report.verdict(result.blessed, "blessed" if result.blessed else "not blessed")
                + report.bullets(result.reasons),
            ),
            ("Metrics (test participants, recording level)", report.table(["metric", "value"], result.metrics.items())),
            ("Curves", plots),
            (
                "Confusion matrix at the chosen threshold",
                report.table(
                    ["true \\ predicted", *CLASSES],
                    [[c, *row] for c, row in zip(CLASSES, result.confusion.tolist(), strict=True)],
                ),
            ),
            ("Subgroups", report.table(list(result.subgroups.columns), result.subgroups.itertuples(index=False))),
        ],
    )
