"""The whole lifecycle on one machine: train through KFP's local runner, serve through Seldon, send traffic,
monitor it, and retrain on what production heard when monitoring says so."""

from __future__ import annotations

import csv
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from auscult import report, synth, table
from auscult.registry import Registry
from auscult.serving import client, server
from auscult.stages.curate import reason_counts
from auscult.stages.label import DEFAULT_CLASS_MAP, invert
from auscult.store import open_store
from pipelines.local import RunResult, Workspace, run_monitor, run_training

STAGES = ("monitor", "ingest", "curate", "label", "prep", "train", "validate", "deploy")


@dataclass(frozen=True)
class LoopConfig:
    workdir: Path = Path(".auscult/run")
    sources: tuple[str, ...] = ()  # empty: generate a synthetic cohort
    participants: int = 120
    traffic_participants: int = 40
    effect: float = synth.CohortSpec.effect  # how different the classes sound in the synthetic cohort
    epochs: int = 10
    seed: int = 0
    min_auroc: float = 0.80
    retrain: bool = True


@dataclass
class Traffic:
    sent: int = 0
    rejected: int = 0
    feedback: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class LoopResult:
    runs: list[RunResult]
    monitoring: RunResult | None
    traffic: Traffic | None
    production: str | None
    report_path: Path
    peak_rss_mib: float
    seconds: float


def synthetic_sources(folder: Path, config: LoopConfig, log: Callable[[str], None]) -> tuple[Path, Path]:
    """The training cohort and a later, shifted cohort (new phones) that production will hear."""
    cohort, shifted = folder / "cohort", folder / "cohort-shifted"
    specs = (
        (cohort, synth.CohortSpec(participants=config.participants, seed=config.seed, effect=config.effect)),
        (
            shifted,
            synth.CohortSpec(
                participants=config.traffic_participants,
                seed=config.seed + 1,
                effect=config.effect,
                shifted=True,
                defect_rate=0.0,
                id_prefix="S",
            ),
        ),
    )
    for target, spec in specs:
        marker = target / "spec.json"
        if marker.exists() and marker.read_text() == json.dumps(spec.__dict__):
            continue
        counts = synth.generate(target, spec)
        marker.write_text(json.dumps(spec.__dict__))
        log(
            f"generate: {target}: {counts['files']} files from {counts['participants']} participants "
            f"({counts['positive']} positive, {counts['negative']} negative, {counts['defective']} defective files)"
        )
    return cohort, shifted


def send_traffic(url: str, cohort: Path, log: Callable[[str], None]) -> Traffic:
    """Every recording of ``cohort`` as an app would send it, then its true label as feedback."""
    lookup = invert(DEFAULT_CLASS_MAP)
    with open(cohort / synth.METADATA_FILE, newline="") as handle:
        people = {row["id"]: row for row in csv.DictReader(handle)}
    files = sorted(p for p in cohort.glob(f"{synth.DATE_FOLDER}/*/*") if p.is_file())
    traffic = Traffic()
    started = time.perf_counter()
    for position, path in enumerate(files, start=1):
        person = people[path.parent.name]
        tags = {
            "participant": path.parent.name,
            "sound_type": path.stem.split("-")[0],
            "device": person["device"],
            "sex": person["g"],
            "age": person["a"],
        }
        try:
            answer = client.predict_file(url, path.read_bytes(), tags)
        except client.ServingError as error:
            traffic.rejected += 1
            traffic.errors.append(f"{path.name}: {error}")
            continue
        traffic.sent += 1
        truth = lookup.get(person["covid_status"].lower())
        if truth:
            client.send_feedback(url, answer, truth)
            traffic.feedback += 1
        if position % max(1, len(files) // 5) == 0:
            log(f"serve: {position}/{len(files)} requests")
    traffic.seconds = time.perf_counter() - started
    return traffic


def run_loop(config: LoopConfig, log: Callable[[str], None] = print) -> LoopResult:
    started = time.perf_counter()
    workspace = Workspace(config.workdir)
    workspace.prepare()
    shifted = None
    sources = list(config.sources)
    if not sources:
        cohort, shifted = synthetic_sources(config.workdir / "data", config, log)
        sources = [str(cohort)]
    log(f"== training run 1: sources {sources}")
    runs = [run_training(workspace, sources, config.epochs, config.seed, config.min_auroc)]
    registry = Registry(open_store(workspace.store_uri))
    traffic, monitoring = None, None
    pointer = registry.production()
    if pointer and shifted is not None:
        log(f"== serving {pointer['version']} with Seldon; sending the shifted cohort as production traffic")
        with server.start(workspace.store_uri, config.workdir / "logs" / "server.log") as running:
            traffic = send_traffic(running.url, shifted, log)
        log(
            f"serve: {traffic.sent} answered, {traffic.rejected} rejected, {traffic.feedback} feedback labels; "
            f"server stopped"
        )
        log("== monitoring production traffic")
        monitoring = run_monitor(workspace)
        if monitoring.parameter("monitor", "retrain") and config.retrain:
            log("== training run 2: the same sources plus production telemetry")
            runs.append(run_training(workspace, sources + ["telemetry"], config.epochs, config.seed, config.min_auroc))
    elif not pointer:
        log("== no model was blessed, so nothing is served; see the validation report for why")
    else:
        log("== a custom source: serve it with `auscult serve` and send real traffic")
    final = registry.production()
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    result = LoopResult(
        runs,
        monitoring,
        traffic,
        final["version"] if final else None,
        config.workdir / "report.html",
        peak / 1024,
        time.perf_counter() - started,
    )
    result.report_path.write_text(loop_report(result))
    return result


def stage_rows(run: RunResult) -> list[list[object]]:
    rows = []
    for stage in STAGES:
        task = run.tasks.get(stage)
        if task is None:
            rows.append([stage, "-", "skipped"])
            continue
        counts = ", ".join(f"{k} {v:g}" for k, v in task.metrics.items() if k != "wall_s" and k in COUNT_KEYS)
        rows.append([stage, f"{task.metrics.get('wall_s', float('nan')):.1f}", counts])
    return rows


COUNT_KEYS = (
    "recordings",
    "duplicates",
    "missing_files",
    "quarantined",
    "usable",
    "labelled_usable",
    "review_queue",
    "train_windows",
    "test_windows",
    "training_windows",
    "best_epoch",
    "test_recordings",
    "requests",
    "feedback_labels",
)


def summary_lines(result: LoopResult) -> list[str]:
    lines = []
    for number, run in enumerate(result.runs, start=1):
        lines.append(f"Training run {number} ({run.seconds:.0f} s, {run.folder})")
        lines += [f"  {stage:<9} {seconds:>6} s  {counts}" for stage, seconds, counts in stage_rows(run)]
        if "validate" in run.tasks:
            verdict = json.loads((Path(run.artifact("validate", "onnx_model")) / "validation.json").read_text())
            figures = verdict["metrics"]
            lines.append(
                f"  AUROC {figures['auroc']:.3f} "
                f"(95% CI {figures['auroc_ci_low']:.3f}-{figures['auroc_ci_high']:.3f}); "
                f"sensitivity {figures['sensitivity_at_target_specificity']:.2f} at specificity >= "
                f"{figures['target_specificity']:.2f}; torch-vs-ONNX max abs difference "
                f"{figures['onnx_max_abs_difference']:.1e}"
            )
            lines.append(f"  {'BLESSED' if verdict['blessed'] else 'NOT BLESSED'}:")
            lines += [f"    {reason}" for reason in verdict["reasons"]]
        if "curate" in run.tasks:
            reasons = reason_counts(table.read(run.artifact("curate", "curated"), "curate"))
            if reasons:
                lines.append("  quarantined: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items()))
            lines.append(f"  data profile (each quarantined file and why): {run.artifact('curate', 'profile')}")
    if result.traffic:
        t = result.traffic
        lines.append(
            f"Serving: {t.sent} requests answered ({t.sent / max(t.seconds, 1e-9):.1f}/s over HTTP), "
            f"{t.rejected} rejected, {t.feedback} feedback labels"
        )
    if result.monitoring:
        monitor = result.monitoring.tasks["monitor"]
        drift = ", ".join(f"{k[4:]} {v:.2f}" for k, v in monitor.metrics.items() if k.startswith("psi_"))
        lines.append(f"Monitoring {monitor.metrics.get('requests', 0):g} requests: PSI {drift}")
        if "feedback_auroc" in monitor.metrics:
            labels, auroc = monitor.metrics["feedback_labels"], monitor.metrics["feedback_auroc"]
            lines.append(f"  AUROC on {labels:g} feedback labels: {auroc:.3f}")
        retrain = result.monitoring.parameter("monitor", "retrain")
        lines.append(f"  decision: {'RETRAIN' if retrain else 'keep the current model'}")
        lines += [f"    {reason}" for reason in str(result.monitoring.parameter("monitor", "reasons", "")).splitlines()]
    lines.append(f"Production model: {result.production or 'none'}")
    lines.append(f"Wall time {result.seconds:.0f} s; peak memory of one process {result.peak_rss_mib:.0f} MiB")
    lines.append(f"Report: {result.report_path.resolve()}")
    return lines


def loop_report(result: LoopResult) -> str:
    import matplotlib.pyplot as plt

    sections = [("Summary", "<pre>" + "\n".join(summary_lines(result)) + "</pre>")]
    fig, axis = plt.subplots(figsize=(8, 3))
    width = 0.8 / max(1, len(result.runs))
    for number, run in enumerate(result.runs):
        seconds = [run.tasks[s].metrics.get("wall_s", 0) if s in run.tasks else 0 for s in STAGES]
        axis.bar([i + number * width for i in range(len(STAGES))], seconds, width, label=f"run {number + 1}")
    axis.set_xticks([i + width * (len(result.runs) - 1) / 2 for i in range(len(STAGES))], STAGES)
    axis.set_ylabel("seconds")
    axis.legend()
    sections.append(("Time per stage", report.figure(fig)))
    links = []
    for number, run in enumerate(result.runs, start=1):
        for task, name in (("curate", "profile"), ("validate", "report"), ("monitor", "report")):
            path = run.artifact(task, name)
            if path:
                links.append(f'<li><a href="{Path(path).resolve().as_uri()}">run {number}: {task} {name}</a></li>')
    if result.monitoring and result.monitoring.artifact("monitor", "report"):
        uri = Path(result.monitoring.artifact("monitor", "report")).resolve().as_uri()
        links.append(f'<li><a href="{uri}">monitoring of production traffic</a></li>')
    sections.append(("Stage reports", "<ul>" + "".join(links) + "</ul>"))
    return report.page("auscult: one turn of the lifecycle", sections)
