"""validate: is the trained model fit to serve? Metrics with confidence intervals, torch-vs-ONNX parity, a
check in the serving runtime, and a comparison with the model in production. Blessed, or not, with reasons.

Every figure is computed on the ONNX model, the artifact that will be served, per recording (window
probabilities averaged), on the held-out test participants; every interval is a bootstrap over participants
(:mod:`auscult.assessment`). A model is blessed only on evidence: enough participants of each class in
validation and test, the lower bound of its AUROC above the minimum, the lower bound of its paired
difference from production above the allowed regression, and proof that it hears more than how a recording
was made: a margin over recording properties alone, and a stratified AUROC within every property that alone
predicts the label (:mod:`auscult.audit`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auscult import assessment, audio, audit, layout, metrics, report
from auscult.errors import InputError
from auscult.model import ScreeningNet, export_onnx
from auscult.registry import Registry
from auscult.serving.runtime import Predictor
from auscult.stages.label import describe_rates, quarantine_bias, quarantine_rates
from auscult.stages.prep import Prepared, SplitWindows
from auscult.stages.train import TrainResult, per_recording
from auscult.task import (
    CLASSES,
    MAX_REGRESSION,
    MIN_AUROC,
    MIN_MARGIN_OVER_METADATA,
    MIN_PARTICIPANTS_PER_CLASS,
    SPLITS,
)

# Besides the target, operating points the report shows (thresholds chosen on validation participants too).
OTHER_SPECIFICITIES = (0.80, 0.95)


@dataclass(frozen=True)
class ValidateConfig:
    min_auroc: float = MIN_AUROC  # the lower bound of the test AUROC's participant interval must reach it
    target_specificity: float = 0.90
    min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS  # in each of validation and test
    parity_tolerance: float = 1e-4
    max_regression: float = (
        MAX_REGRESSION  # lower bound of (candidate - production) AUROC on the same test participants
    )
    # Lower bound of (candidate - recording properties alone) AUROC on the same test participants.
    min_margin_over_metadata: float = MIN_MARGIN_OVER_METADATA
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
    # Per subgroup with an interval: attribute, value, the AUROC's lower bound and the participants of its smaller
    # class (what the change-control plan compares with production's).
    subgroups: list[dict] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # training recordings per source
    origins: dict[str, int] = field(default_factory=dict)  # training recordings per origin (synthetic among them)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        (folder / layout.REFERENCE_FILE).write_text(json.dumps(self.reference))
        figures = {
            "blessed": self.blessed,
            "reasons": self.reasons,
            "metrics": self.metrics,
            "subgroups": self.subgroups,
            "sources": self.sources,
            "origins": self.origins,
        }
        (folder / VERDICT_FILE).write_text(json.dumps(figures))

    @classmethod
    def load(cls, folder: str | Path) -> Verdict:
        folder = Path(folder)
        figures = json.loads((folder / VERDICT_FILE).read_text())
        reference = json.loads((folder / layout.REFERENCE_FILE).read_text())
        return cls(
            figures["blessed"],
            figures["reasons"],
            figures["metrics"],
            reference,
            figures.get("subgroups", []),  # a verdict saved before subgroups and sources were kept has neither
            figures.get("sources", {}),
            figures.get("origins", {}),
        )

    @staticmethod
    def onnx(folder: str | Path) -> bytes:
        """The ONNX model that was validated."""
        return (Path(folder) / layout.ONNX_FILE).read_bytes()


@dataclass
class Validation:
    blessed: bool
    reasons: list[str]
    metrics: dict[str, float]
    assessment: assessment.Assessment  # the test participants' figures, operating points and subgroups
    splits: pd.DataFrame  # per split: participants and recordings of each class
    quarantine: pd.DataFrame  # what curate quarantined (and left for review), by class and by source
    audit: pd.DataFrame  # per recording property: how well it alone predicts the label (training participants)
    within: pd.DataFrame  # per flagged property: the model's stratified AUROC on the test participants
    strata: pd.DataFrame  # per stratum of each flagged property: counts, the model's AUROC where it can be judged
    reference: dict = field(default_factory=dict)  # what monitoring compares production traffic with

    sources: dict[str, int] = field(default_factory=dict)  # training recordings per source
    origins: dict[str, int] = field(default_factory=dict)  # training recordings per origin

    @property
    def verdict(self) -> Verdict:
        judged = self.assessment.subgroups.dropna(subset=["auroc_ci_low"])
        fewest = judged[[f"{cls}_participants" for cls in CLASSES]].min(axis=1)
        subgroups = [
            {"attribute": r.attribute, "value": r.value, "auroc_ci_low": float(r.auroc_ci_low), "participants": int(n)}
            for r, n in zip(judged.itertuples(), fewest, strict=True)
        ]
        return Verdict(self.blessed, self.reasons, self.metrics, self.reference, subgroups, self.sources, self.origins)


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


def reference_of(prepared: Prepared, scores: pd.DataFrame, limit: int = 2000) -> dict:
    """Training-time distributions of the input statistics and of the predicted positive probability, and the
    recordings the model learnt from or was tuned on (content ids), which no later evaluation may count."""
    train = prepared.table[prepared.table["split"] == "train"]
    seen = prepared.table.loc[prepared.table["split"].isin(["train", "validation"]), "recording_id"]
    return {
        "stats_version": audio.STATS_VERSION,
        "input": {name: train[f"input_{name}"].dropna().astype(float).tolist()[:limit] for name in audio.STAT_NAMES},
        "prediction": scores["score"].astype(float).tolist()[:limit],
        "recordings": sorted(seen.astype(str)),
    }


def split_counts(index: pd.DataFrame) -> pd.DataFrame:
    """Participants and recordings of each class in each split (``index``: the prepared windows' index)."""
    recordings = index.drop_duplicates("recording_id")
    rows = [{"split": split, **assessment.counts(recordings[recordings["split"] == split])} for split in SPLITS]
    return pd.DataFrame(rows)


def validate(
    trained: TrainResult,
    prepared: Prepared,
    folder: str | Path,
    registry: Registry | None = None,
    config: ValidateConfig = ValidateConfig(),
) -> Validation:
    """Export the trained model to ONNX in ``folder``, judge it, and save the :class:`Verdict` beside it."""
    model = trained.model
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model, folder / layout.ONNX_FILE)
    predictor = Predictor(Verdict.onnx(folder), "candidate")
    test_windows, test_index = prepared.split("test")
    validation_windows, validation_index = prepared.split("validation")
    if len(test_windows) == 0:
        raise InputError("the test split is empty: too few labelled participants to validate; add recordings")
    scores = onnx_scores(predictor, test_windows, test_index)
    # Operating thresholds are chosen on validation participants, then applied to test ones.
    if len(validation_windows) == 0:
        raise InputError("the validation split is empty: no participants to choose an operating threshold on")
    chosen_on = onnx_scores(predictor, validation_windows, validation_index)
    thresholds = {
        specificity: metrics.threshold_at_specificity(
            chosen_on["label"].to_numpy(), chosen_on["score"].to_numpy(), specificity
        )
        for specificity in {config.target_specificity, *OTHER_SPECIFICITIES}
    }
    result = assessment.assess(
        scores, prepared.table, thresholds, config.target_specificity, config.bootstrap, config.seed
    )
    splits = split_counts(prepared.index)
    # Counts are kept per split (test_negative_participants, ...), not as the assessment's unprefixed ones.
    counted = assessment.counts(scores.iloc[:0])
    figures = {k: v for k, v in result.figures.items() if k not in counted}
    for row in splits.itertuples(index=False):
        figures |= {f"{row.split}_{k}": v for k, v in row._asdict().items() if k != "split"}
    reasons, blessed = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal blessed
        blessed &= passed
        reasons.append(("pass: " if passed else "FAIL: ") + text)

    for split in ("validation", "test"):
        found = {k: int(figures.get(f"{split}_{k}", 0)) for k in counted}
        fewest = min(found[f"{cls}_participants"] for cls in CLASSES)
        check(
            fewest >= config.min_participants_per_class,
            f"{split}: {assessment.describe_counts(found)}, against a minimum of "
            f"{config.min_participants_per_class} participants per class",
        )
    auroc, low, high = figures["auroc"], figures["auroc_ci_low"], figures["auroc_ci_high"]
    check(
        not np.isnan(low) and low >= config.min_auroc,
        f"test AUROC {auroc:.3f}, 95% CI over participants {low:.3f}-{high:.3f}: its lower bound against a "
        f"minimum of {config.min_auroc}",
    )
    max_difference = parity(model, predictor, test_windows)
    figures["onnx_max_abs_difference"] = max_difference
    check(
        max_difference <= config.parity_tolerance,
        f"torch vs ONNX max abs difference {max_difference:.2e} (tolerance {config.parity_tolerance:.0e})",
    )
    problem = serving_check(predictor, test_windows)
    check(problem is None, problem or "the serving runtime loads the model and answers a request")
    pointer = registry.production() if registry else None
    if pointer:
        production = Predictor(registry.onnx(pointer["version"]), pointer["version"])
        figures |= compare_with_production(scores, onnx_scores(production, test_windows, test_index), config)
        difference_low = figures["auroc_difference_ci_low"]
        check(
            not np.isnan(difference_low) and difference_low >= -config.max_regression,
            f"AUROC {auroc:.3f} against production {pointer['version']} at {figures['production_auroc']:.3f} on "
            f"the same test participants: difference {figures['auroc_difference']:+.3f}, 95% CI "
            f"{difference_low:+.3f} to {figures['auroc_difference_ci_high']:+.3f}; its lower bound against an "
            f"allowed regression of {config.max_regression}",
        )
    else:
        reasons.append("pass: no model in production yet, nothing to compare with")
    shortcuts = shortcut_checks(prepared, scores, config)
    figures |= shortcuts.figures
    for passed, text in shortcuts.checks:
        check(passed, text)
    figures["min_auroc"] = config.min_auroc
    figures["front_end_f_max_hz"] = model.config.f_max
    figures["channel_augmentation"] = float(trained.guard is not None)
    quarantine = quarantine_rates(prepared.table)
    notes = shortcuts.notes + channel_notes(result.subgroups) + result.notes + [f"note: {describe_rates(quarantine)}"]
    notes += [f"note: {warning}" for warning in [quarantine_bias(quarantine)] if warning]
    notes += [f"note: trained deaf to the channel: {trained.guard.describe()}"] if trained.guard else []
    validation = Validation(
        blessed=bool(blessed),
        reasons=reasons + notes,
        metrics={k: float(v) for k, v in figures.items()},
        assessment=result,
        splits=splits,
        quarantine=quarantine,
        audit=prepared.audit,
        within=shortcuts.within,
        strata=shortcuts.strata,
        reference=reference_of(prepared, scores),
        sources={str(k): int(v) for k, v in prepared.training_recordings["source"].value_counts().items()},
        origins={str(k): int(v) for k, v in prepared.training_recordings["origin"].value_counts().items()},
    )
    validation.verdict.save(folder)
    return validation


def channel_notes(subgroups: pd.DataFrame) -> list[str]:
    """The model's AUROC within each collection channel (device) and source, when there is more than one."""
    notes = []
    for attribute in ("device", "source"):
        rows = subgroups[subgroups["attribute"] == attribute]
        if len(rows) > 1:
            notes.append(
                f"note: AUROC per {attribute}: "
                + "; ".join(
                    f"{r.value} {r.auroc:.3f} (95% CI {r.auroc_ci_low:.3f}-{r.auroc_ci_high:.3f}, "
                    f"{r.positive_participants} positive / {r.negative_participants} negative participants)"
                    for r in rows.itertuples()
                )
            )
    return notes


def auroc_difference(
    candidate: pd.DataFrame, other: pd.DataFrame, config: ValidateConfig, at_least: float = 0.0
) -> tuple[float, ...]:
    """(the other scorer's AUROC, the candidate's minus it, and that difference's paired participant interval)
    on the recordings both scored: each resample scores both on the same participants. The other's AUROC counts
    as ``at_least`` when lower (a scorer that never listened can always reach chance)."""
    paired = candidate.merge(other[["recording_id", "score"]], on="recording_id", suffixes=("", "_other"))
    labels, ours, theirs = (paired[c].to_numpy() for c in ("label", "score", "score_other"))

    def difference(pick: np.ndarray) -> float:
        return metrics.roc_auc(labels[pick], ours[pick]) - max(at_least, metrics.roc_auc(labels[pick], theirs[pick]))

    low, high = metrics.bootstrap_ci(
        difference, assessment.participant_groups(paired), n=config.bootstrap, seed=config.seed
    )
    other_auroc = metrics.roc_auc(labels, theirs)
    return other_auroc, metrics.roc_auc(labels, ours) - max(at_least, other_auroc), low, high


def compare_with_production(candidate: pd.DataFrame, production: pd.DataFrame, config: ValidateConfig) -> dict:
    names = ("production_auroc", "auroc_difference", "auroc_difference_ci_low", "auroc_difference_ci_high")
    return dict(zip(names, auroc_difference(candidate, production, config), strict=True))


@dataclass
class Shortcuts:
    """What validate learns from scorers that never listened: the checks it gates on, figures and notes."""

    checks: list[tuple[bool, str]]
    figures: dict[str, float]
    notes: list[str]
    within: pd.DataFrame
    strata: pd.DataFrame


def shortcut_checks(prepared: Prepared, candidate: pd.DataFrame, config: ValidateConfig) -> Shortcuts:
    """Could a model that never listened have done as well? The candidate must beat recording properties alone
    (:func:`audit.metadata_baseline`) by ``min_margin_over_metadata`` on the paired participant bootstrap, and
    within the strata of every property the audit flags its stratified AUROC must reach ``min_auroc``. An
    acoustic baseline (MFCC statistics) is reported beside them for context."""
    used = prepared.table[prepared.table["split"].notna()]
    train, test = prepared.training_recordings, used[used["split"] == "test"]
    found = prepared.audit
    baseline = audit.metadata_baseline(train, test)
    low, high = assessment.auroc_ci(baseline, config.bootstrap, config.seed)
    baseline_auroc, margin, margin_low, margin_high = auroc_difference(candidate, baseline, config, at_least=0.5)
    figures = {
        "metadata_auroc": baseline_auroc,
        "metadata_auroc_ci_low": low,
        "metadata_auroc_ci_high": high,
        "margin_over_metadata": margin,
        "margin_over_metadata_ci_low": margin_low,
        "margin_over_metadata_ci_high": margin_high,
    }
    ranked = found[found["property"].isin(audit.BASELINE) & found["auroc"].notna()].sort_values("auroc")
    strongest = ranked.iloc[-1] if len(ranked) else None
    passed = not np.isnan(margin_low) and margin_low >= config.min_margin_over_metadata
    text = (
        f"recording properties alone (a model that never listened) reach AUROC {baseline_auroc:.3f} (95% CI "
        f"{low:.3f}-{high:.3f}) on the test participants; this model's margin over them (or over chance, if "
        f"higher) is {margin:+.3f} (95% CI "
        f"{margin_low:+.3f} to {margin_high:+.3f}), its lower bound against a required margin of "
        f"{config.min_margin_over_metadata}"
    )
    if not passed and strongest is not None:
        text += f"; {audit.name(strongest.property)} alone predicts the label with AUROC {strongest.auroc:.2f}"
    checks = [(passed, text)]
    summaries, rows = [], []
    for names, flagged in _same_strata(found[found["flagged"]], used, train):
        summary, strata = audit.within_strata(
            candidate, prepared.table, train, flagged.property, config.bootstrap, config.seed,
            config.min_participants_per_class,
        )  # fmt: skip
        summaries.append(summary)
        rows.append(strata)
        checks.append(_within_check(names, flagged, summary, config))
        figures |= {
            f"stratified_auroc_{flagged.property}{suffix}": summary[f"auroc{suffix}"]
            for suffix in ("", "_ci_low", "_ci_high")
        }
    features = pd.concat([audit.mfcc_statistics(*prepared.split(split)) for split in ("train", "test")])
    acoustic = audit.acoustic_baseline(train, test, features)
    acoustic_low, acoustic_high = assessment.auroc_ci(acoustic, config.bootstrap, config.seed)
    figures |= {
        "acoustic_auroc": metrics.roc_auc(acoustic["label"], acoustic["score"]),
        "acoustic_auroc_ci_low": acoustic_low,
        "acoustic_auroc_ci_high": acoustic_high,
    }
    notes = [
        f"note: for context, a simple listener (MFCC statistics, logistic regression) reaches AUROC "
        f"{figures['acoustic_auroc']:.3f} (95% CI {acoustic_low:.3f}-{acoustic_high:.3f}) on the test participants"
    ]
    within_columns = ["property", "auroc", "auroc_ci_low", "auroc_ci_high", *(f"{c}_participants" for c in CLASSES)]
    return Shortcuts(
        checks,
        figures,
        notes,
        pd.DataFrame(summaries, columns=within_columns),
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
    )


def _same_strata(flagged: pd.DataFrame, used: pd.DataFrame, train: pd.DataFrame) -> list[tuple[str, object]]:
    """Flagged properties that cut the recordings into the same strata (device, format and sample rate of one
    collection channel) are judged once: (their names, the first one's audit row)."""
    groups: dict[tuple, list] = {}
    for row in flagged.itertuples():
        partition = tuple(pd.factorize(audit.strata(used, row.property, train))[0])
        groups.setdefault(partition, []).append(row)
    return [(" / ".join(audit.name(r.property) for r in members), members[0]) for members in groups.values()]


def _within_check(names: str, flagged, summary: dict, config: ValidateConfig) -> tuple[bool, str]:
    prop = audit.name(flagged.property)
    alone = (
        f"{names} alone predicts the label with AUROC {flagged.auroc:.2f} (95% CI {flagged.auroc_ci_low:.2f}-"
        f"{flagged.auroc_ci_high:.2f}) on the training participants"
    )
    if np.isnan(summary["auroc"]):
        return False, (
            f"{alone}, and no {prop} stratum holds test participants of both classes: nothing shows that this "
            f"model hears more than the {prop}"
        )
    low = summary["auroc_ci_low"]
    evidence = {cls: summary[f"{cls}_participants"] for cls in CLASSES}
    enough = min(evidence.values()) >= config.min_participants_per_class
    passed = enough and not np.isnan(low) and low >= config.min_auroc
    return passed, (
        f"{alone}; within {prop} strata this model reaches {summary['auroc']:.3f} (95% CI {low:.3f}-"
        f"{summary['auroc_ci_high']:.3f}), its lower bound against a minimum of {config.min_auroc}, on "
        + " and ".join(f"{n} {cls}" for cls, n in evidence.items())
        + f" test participants in strata holding at least {audit.MIN_PER_STRATUM} of each class (minimum "
        f"{config.min_participants_per_class} of each)"
    )


def _ci(figures: dict[str, float], name: str) -> str:
    return f"{figures[name + '_ci_low']:.3f} to {figures[name + '_ci_high']:.3f}"


def report_html(result: Validation, history: list[dict] | None = None) -> str:
    import matplotlib.pyplot as plt

    fpr, tpr, _ = result.assessment.roc
    scores = result.assessment.scores
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(fpr, tpr, color="#4c72b0")
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(title=f"ROC (AUROC {result.metrics['auroc']:.3f})", xlabel="1 - specificity", ylabel="sensitivity")
    labels, values = scores["label"].to_numpy(), scores["score"].to_numpy()
    edges = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(values, edges[1:-1]), 0, 9)
    filled = [b for b in range(10) if (which == b).any()]
    axes[1].plot([values[which == b].mean() for b in filled], [labels[which == b].mean() for b in filled], "o-")
    axes[1].plot([0, 1], [0, 1], ":", color="grey")
    axes[1].set(title=f"Calibration (ECE {result.metrics['ece']:.3f})", xlabel="predicted", ylabel="observed")
    if history:
        axes[2].plot([h["epoch"] for h in history], [h["loss"] for h in history], label="training loss")
        axes[2].plot([h["epoch"] for h in history], [h["validation_auroc"] for h in history], label="validation AUROC")
        axes[2].legend()
        axes[2].set(title="Training", xlabel="epoch")
    plots = report.figure(fig)
    split_columns = [c for c in result.splits.columns if c != "split"]
    return report.page(
        "auscult model validation",
        [
            (
                "Verdict",
                report.verdict(result.blessed, "blessed" if result.blessed else "not blessed")
                + report.bullets(result.reasons),
            ),
            (
                "Splits (by participant)",
                report.table(
                    ["split", *(c.replace("_", " ") for c in split_columns)], result.splits.itertuples(index=False)
                ),
            ),
            *assessment.sections(result.assessment, "the test participants"),
            ("Could a model that never listened have done as well?", shortcut_section(result)),
            (
                "Curation must not take sides: quarantine and review by class and source",
                report.table(
                    [c.replace("_", " ") for c in result.quarantine.columns], result.quarantine.itertuples(index=False)
                ),
            ),
            ("Curves", plots),
            ("All figures", report.table(["metric", "value"], result.metrics.items())),
        ],
    )


def _scorers(result: Validation) -> list[tuple[str, str]]:
    """(figure name, what it is) for every scorer the shortcut section compares, the model first."""
    return [
        ("auroc", "this model"),
        ("metadata_auroc", "recording properties alone"),
        ("acoustic_auroc", "a simple listener (MFCC statistics)"),
        *((f"stratified_auroc_{p}", f"this model within {audit.name(p)} strata") for p in result.within["property"]),
    ]


def shortcut_section(result: Validation) -> str:
    import matplotlib.pyplot as plt

    figures = result.metrics
    scorers = _scorers(result)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    values = [figures[name] for name, _ in scorers]
    errors = np.array(
        [[v - figures[f"{n}_ci_low"], figures[f"{n}_ci_high"] - v] for (n, _), v in zip(scorers, values, strict=True)]
    ).T
    axes[0].barh([label for _, label in scorers][::-1], values[::-1], xerr=errors[:, ::-1], color="#4c72b0")
    axes[0].axvline(figures["min_auroc"], color="#c44e52", ls="--")
    axes[0].set(xlim=(0, 1), title="AUROC on the test participants (95% CI)")
    audited = result.audit.dropna(subset=["auroc"]).sort_values("auroc")  # one stratum: nothing to show
    colours = ["#c44e52" if flagged else "#8c8c8c" for flagged in audited["flagged"]]
    axes[1].barh([audit.name(p) for p in audited["property"]], audited["auroc"], color=colours)
    axes[1].axvline(audit.FLAG_AUROC, color="black", ls=":")
    axes[1].set(xlim=(0, 1), title="Each property alone (training participants)")
    shares = result.quarantine
    labels = [f"{r.by}: {r.value}" for r in shares.itertuples()]
    axes[2].barh(labels, 100 * shares["quarantined_share"], color="#dd8452")
    axes[2].set(title="Quarantined, by class and source", xlabel="% of recordings")
    rows = [[label, figures[name], _ci(figures, name)] for name, label in scorers]
    rows.append(
        [
            "margin of this model over properties alone",
            figures["margin_over_metadata"],
            _ci(figures, "margin_over_metadata"),
        ]
    )
    strata = (
        report.table(
            ["property", "stratum", *(c.replace("_", " ") for c in result.strata.columns[2:])],
            result.strata.itertuples(index=False),
        )
        if len(result.strata)
        else "<p>No property predicts the label on its own: no stratified analysis needed.</p>"
    )
    return (
        report.figure(fig)
        + report.table(["scorer", "AUROC", "95% CI"], rows)
        + report.table(audit.TABLE_HEADER, audit.table_rows(result.audit))
        + strata
    )


def summary_markdown(result: Validation) -> str:
    """The verdict for KFP's UI: the reasons, and the model beside the scorers that never listened."""
    figures = result.metrics
    lines = [f"# {'BLESSED' if result.blessed else 'NOT BLESSED'}", ""]
    lines += [f"- {reason}" for reason in result.reasons]
    lines += ["", "## Could a model that never listened have done as well?", ""]
    return (
        "\n".join(lines)
        + "\n"
        + report.markdown_table(
            ["scorer", "AUROC on the test participants", "95% CI"],
            [[label, figures[name], _ci(figures, name)] for name, label in _scorers(result)],
        )
    )
