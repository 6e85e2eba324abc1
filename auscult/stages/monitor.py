"""monitor: compare what production hears with what the model was trained on, measure performance on
feedback labels, and decide whether to retrain, saying why. The telemetry becomes the next ingest source.

Monitoring reads the telemetry of its window, not all that was ever served: records (and labels) filed from the day
before the production version was registered (no request can name a version before it exists; the day before
allows for a server's clock that is behind), or from ``window_days`` ago when that is later. Telemetry is filed
by day (:mod:`auscult.layout`), so the days before the window are not even listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from auscult import audio, layout, metrics, report
from auscult.registry import Registry
from auscult.serving import telemetry
from auscult.task import CLASSES


@dataclass(frozen=True)
class MonitorConfig:
    min_requests: int = 30
    psi_threshold: float = 0.2
    ks_p_value: float = 0.01
    min_feedback: int = 20
    min_feedback_auroc: float = 0.80
    window_days: int | None = None  # only the requests of the last days (None: all since the version was registered)


@dataclass
class Monitoring:
    model_version: str | None
    requests: int
    feedback: int
    drift: list[dict]  # per measure: name, psi, ks, p_value, drifted
    feedback_auroc: float
    retrain: bool
    reasons: list[str]
    current: dict[str, list[float]] = field(default_factory=dict)
    reference: dict[str, list[float]] = field(default_factory=dict)


def monitor(registry: Registry, config: MonitorConfig = MonitorConfig()) -> Monitoring:
    pointer = registry.production()
    if not pointer:
        return Monitoring(None, 0, 0, [], float("nan"), False, ["no model in production: nothing to monitor"])
    version = pointer["version"]
    recorded = telemetry.read(registry.store, since=window_start(registry, version, config))
    records, truths = recorded.for_model(version), recorded.feedback
    reference_data = registry.reference(version)
    reference = {**reference_data["input"], "prediction": reference_data["prediction"]}
    # Input statistics are compared only when computed by the same definition as the reference (records and
    # references from before versioning are version 1).
    reference_stats = reference_data.get("stats_version", 1)
    comparable = [r for r in records if r.get("stats_version", 1) == reference_stats]
    current = {name: [float(r["stats"][name]) for r in comparable] for name in audio.STAT_NAMES}
    current["prediction"] = [float(r["probabilities"][1]) for r in records]
    drift: list[dict] = []
    # A model trained on data a participant has since had erased must be replaced, whatever its traffic says.
    erasures = registry.erasures(version)
    reasons = [
        f"{version} was trained on data erased at {flag['at']} (erasure {flag['erasure']}): retrain without it"
        for flag in erasures
    ]
    labelled = [
        (CLASSES.index(truths[r["request_id"]]), r["probabilities"][1]) for r in records if r["request_id"] in truths
    ]
    if len(records) < config.min_requests:
        reasons.append(f"only {len(records)} requests to {version} (fewer than {config.min_requests}): no decision yet")
        return Monitoring(
            version, len(records), len(labelled), drift, float("nan"), bool(erasures), reasons, current, reference
        )
    if len(comparable) < config.min_requests:
        reasons.append(
            f"input drift not judged: {len(records) - len(comparable)} of {len(records)} requests have input "
            f"statistics of another definition than {version}'s reference (version {reference_stats}); "
            "retraining refreshes the reference"
        )
        current = {"prediction": current["prediction"]}
    for name, values in current.items():
        psi = metrics.population_stability_index(np.array(reference[name]), np.array(values))
        ks, p_value = metrics.kolmogorov_smirnov(np.array(reference[name]), np.array(values))
        drifted = psi >= config.psi_threshold and p_value < config.ks_p_value
        drift.append({"name": name, "psi": psi, "ks": ks, "p_value": p_value, "drifted": drifted})
        if drifted:
            what = "predictions" if name == "prediction" else f"input {name}"
            reasons.append(f"{what} drifted: PSI {psi:.2f} >= {config.psi_threshold}, KS {ks:.2f} (p = {p_value:.1e})")
    feedback_auroc = float("nan")
    if len(labelled) >= config.min_feedback:
        labels, scores = np.array(labelled).T
        feedback_auroc = metrics.roc_auc(labels, scores)
        if not np.isnan(feedback_auroc) and feedback_auroc < config.min_feedback_auroc:
            reasons.append(
                f"AUROC on {len(labelled)} feedback labels is {feedback_auroc:.3f} (below {config.min_feedback_auroc})"
            )
    retrain = bool(reasons)
    if not retrain:
        reasons.append(f"no drift and no performance drop over {len(records)} requests")
    return Monitoring(version, len(records), len(labelled), drift, feedback_auroc, retrain, reasons, current, reference)


def window_start(registry: Registry, version: str, config: MonitorConfig) -> date | None:
    """The first day of telemetry that can concern ``version`` (see the module's docstring); None: every day."""
    card = registry.card(version)
    registered = card.get("registered_at") or card.get("created_at")  # a version registered before the field
    days = [datetime.fromisoformat(registered).date() - timedelta(days=1)] if registered else []
    if config.window_days is not None:
        days.append(datetime.now(UTC).date() - timedelta(days=config.window_days))
    return max(days, default=None)


def record_decision(registry: Registry, result: Monitoring) -> str:
    """Keep the decision in the object store, where CI and the next run can read it."""
    now = datetime.now(UTC)
    return registry.store.put_json(
        layout.monitor_decision(now),
        {
            "decided_at": now.isoformat(),
            "model_version": result.model_version,
            "requests": result.requests,
            "feedback": result.feedback,
            "feedback_auroc": None if np.isnan(result.feedback_auroc) else result.feedback_auroc,
            "drift": result.drift,
            "retrain": result.retrain,
            "reasons": result.reasons,
        },
    )


def report_html(result: Monitoring) -> str:
    import matplotlib.pyplot as plt

    sections = [
        (
            "Decision",
            report.verdict(not result.retrain, "retrain" if result.retrain else "no retraining needed")
            + report.bullets(result.reasons),
        )
    ]
    if result.drift:
        sections.append(
            (
                "Drift against the training reference",
                report.table(
                    ["measure", "PSI", "KS", "p-value", "drifted"],
                    [[d["name"], d["psi"], d["ks"], f"{d['p_value']:.1e}", d["drifted"]] for d in result.drift],
                ),
            )
        )
        names = list(result.current)
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3))
        for axis, name in zip(np.atleast_1d(axes), names, strict=True):
            axis.hist(result.reference[name], bins=25, density=True, alpha=0.6, label="training")
            axis.hist(result.current[name], bins=25, density=True, alpha=0.6, label="production")
            axis.set_title(name, fontsize=9)
        np.atleast_1d(axes)[0].legend(fontsize=8)
        sections.append(("Distributions", report.figure(fig)))
    sections.append(
        (
            "Traffic",
            report.table(
                ["model version", "requests", "feedback labels", "feedback AUROC"],
                [[result.model_version, result.requests, result.feedback, result.feedback_auroc]],
            ),
        )
    )
    return report.page("auscult monitoring", sections)
