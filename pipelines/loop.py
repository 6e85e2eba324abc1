"""The whole lifecycle on one machine: train through KFP's local runner, serve through Seldon, send traffic,
monitor it, and retrain on what production heard when monitoring says so."""

from __future__ import annotations

import csv
import html
import json
import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from auscult import progress, report, synth, table
from auscult.change_control import put_plan
from auscult.lineage import Lineage, actor, who
from auscult.registry import Registry
from auscult.serving import client, server
from auscult.stages.curate import reason_counts
from auscult.stages.deploy import what_it_is
from auscult.stages.label import DEFAULT_CLASS_MAP, invert
from auscult.stages.validate import Verdict
from auscult.store import open_store
from auscult.task import MAX_REGRESSION, MIN_AUROC, MIN_MARGIN_OVER_METADATA, MIN_PARTICIPANTS_PER_CLASS
from pipelines.console import Console, StageFailed
from pipelines.local import RunResult, read_run, run_monitor, run_training
from pipelines.workspace import Workspace

# In the shifted cohort's folder once production has heard it: a rerun does not send the same traffic again.
SERVED_FILE = "served.json"
STAGES = ("monitor", "ingest", "curate", "label", "prep", "train", "validate", "deploy")


@dataclass(frozen=True)
class LoopConfig:
    workdir: Path = Path(".auscult/run")
    sources: tuple[str, ...] = ()  # empty: generate a synthetic cohort
    # Large enough that validation and test each hold 10 participants of each class (min_participants_per_class).
    participants: int = 180
    traffic_participants: int = 40
    effect: float = synth.CohortSpec.effect  # how different the classes sound in the synthetic cohort
    epochs: int = 10
    seed: int = 0
    shards: int = 1
    train_workers: int = 1
    min_auroc: float = MIN_AUROC
    min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS
    min_margin_over_metadata: float = MIN_MARGIN_OVER_METADATA
    max_regression: float = MAX_REGRESSION
    guard_channel: bool = True
    retrain: bool = True
    change_plan: Path | None = None  # a change-control plan to put in the store and apply (None: the default)

    @property
    def parameters(self) -> dict[str, object]:
        """The training pipeline's parameters."""
        return {
            "epochs": self.epochs,
            "seed": self.seed,
            "shards": self.shards,
            "train_workers": self.train_workers,
            "min_auroc": self.min_auroc,
            "min_participants_per_class": self.min_participants_per_class,
            "min_margin_over_metadata": self.min_margin_over_metadata,
            "max_regression": self.max_regression,
            "guard_channel": self.guard_channel,
        }


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
    erasures: list[dict] = field(default_factory=list)  # erasures of data the production model was trained on
    production_is: list[str] = field(default_factory=list)  # what the production model was trained on, validated at
    inputs: list[str] = field(default_factory=list)  # per training run: how its inputs differ from the run before


def log_path(workdir: Path) -> Path:
    """Where a local run keeps everything KFP printed: a new file per run."""
    return workdir / "logs" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"


def synthetic_sources(folder: Path, config: LoopConfig, console: Console) -> tuple[Path, Path]:
    """The training cohort and a later, shifted cohort (new phones) that production will hear."""
    cohort, shifted = folder / "cohort", folder / "cohort-shifted"
    specs = (
        # Balanced classes, so that any seed's cohort clears the participant minimums.
        (
            cohort,
            synth.CohortSpec(
                participants=config.participants, seed=config.seed, effect=config.effect, positive_fraction=0.5
            ),
        ),
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
        (target / SERVED_FILE).unlink(missing_ok=True)  # a new cohort has not been served yet
        counts = synth.generate(target, spec)
        marker.write_text(json.dumps(spec.__dict__))
        console.line(
            f"generate: {target}: {counts['files']} files from {counts['participants']} participants "
            f"({counts['positive']} positive, {counts['negative']} negative, {counts['defective']} defective files)"
        )
    return cohort, shifted


def send_traffic(url: str, cohort: Path, console: Console) -> Traffic:
    """Every recording of ``cohort`` as an app would send it, then its true label as feedback."""
    lookup = invert(DEFAULT_CLASS_MAP)
    with open(cohort / synth.METADATA_FILE, newline="") as handle:
        people = {row["id"]: row for row in csv.DictReader(handle)}
    files = sorted(p for p in cohort.glob(f"{synth.DATE_FOLDER}/*/*") if p.is_file())
    traffic = Traffic()
    started = time.perf_counter()
    for position, path in enumerate(files, start=1):
        console.bar(progress.Step("serve", position, len(files), "requests"), time.perf_counter() - started)
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
    traffic.seconds = time.perf_counter() - started
    return traffic


def run_loop(config: LoopConfig, console: Console) -> LoopResult:
    """The loop; ``console`` hears each stage and keeps the full log. Raises StageFailed when a task fails;
    whatever stops it, the run report says why."""
    try:
        return _loop(config, console)
    except BaseException as error:  # an interrupted run too: the report must not look like the last good one
        what, why = (
            (f"{error.stage} failed", error.cause) if isinstance(error, StageFailed) else ("failed", repr(error))
        )
        (config.workdir / "report.html").write_text(
            report.page(
                "auscult: the run stopped",
                [(what, report.verdict(False, "not finished") + report.bullets([why, f"log: {console.log_path}"]))],
            )
        )
        raise


def _loop(config: LoopConfig, console: Console) -> LoopResult:
    started = time.perf_counter()
    workspace = Workspace(config.workdir)
    workspace.prepare()
    shifted = None
    sources = list(config.sources)
    if not sources:
        cohort, shifted = synthetic_sources(config.workdir / "data", config, console)
        sources = [str(cohort)]
    parameters = dict(config.parameters)
    if config.change_plan is not None:
        plan = put_plan(
            open_store(workspace.store_uri),
            config.change_plan.read_text(),
            str(config.change_plan),
            actor(),
            f"auscult run --change-plan {config.change_plan}",
        )
        parameters["change_plan"] = plan.name
        console.line(f"== change-control plan {plan.name!r} v{plan.version} from {config.change_plan}")
    console.line(f"== training run 1: sources {sources}")
    runs = [run_training(workspace, console, sources, **parameters)]
    console.lines(verdict_lines(runs[-1]))
    registry = Registry(open_store(workspace.store_uri))
    traffic, monitoring = None, None
    pointer = registry.production()
    if pointer and shifted is not None:
        served = shifted / SERVED_FILE
        if served.exists():
            earlier = json.loads(served.read_text())
            console.line(
                f"== the shifted cohort was sent to {earlier['version']} at {earlier['at']} ({earlier['sent']} "
                "requests): not sent twice"
            )
        else:
            console.line(
                f"== serving {pointer['version']} with Seldon; sending the shifted cohort as production traffic"
            )
            with server.start(workspace.store_uri, config.workdir / "logs" / "server.log") as running:
                traffic = send_traffic(running.url, shifted, console)
            if traffic.sent:  # a cohort the server refused whole has not been heard: the next run sends it again
                sent = {"version": pointer["version"], "at": datetime.now(UTC).isoformat(), "sent": traffic.sent}
                served.write_text(json.dumps(sent))
            console.line(
                f"  serve: {traffic.sent} answered, {traffic.rejected} rejected, {traffic.feedback} feedback labels; "
                f"server stopped"
            )
        console.line("== monitoring production traffic")
        monitoring = run_monitor(workspace, console)
        if monitoring.parameter("monitor", "retrain") and config.retrain:
            console.line("== training run 2: the same sources plus production telemetry")
            runs.append(run_training(workspace, console, sources + ["telemetry"], **parameters))
            console.lines(verdict_lines(runs[-1]))
    elif not pointer:
        console.line("== no model was blessed, so nothing is served; see the validation report for why")
    else:
        console.line("== a custom source: serve it with `auscult serve` and send real traffic")
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
        registry.erasures(final["version"]) if final else [],
        what_it_is(registry.card(final["version"])) if final else [],
        [what_changed(run) for run in runs],
    )
    result.report_path.write_text(loop_report(result))
    return result


def stage_lines(run: RunResult) -> list[str]:
    return [run.tasks[stage].line() if stage in run.tasks else f"  {stage:<10}      - s  skipped" for stage in STAGES]


def verdict_lines(run: RunResult) -> list[str]:
    if "validate" not in run.tasks:
        return []
    verdict = Verdict.load(run.artifact("validate", "onnx_model"))
    figures = verdict.metrics
    return [
        f"  AUROC {figures['auroc']:.3f} (95% CI {figures['auroc_ci_low']:.3f}-{figures['auroc_ci_high']:.3f}); "
        f"sensitivity {figures['sensitivity_at_target_specificity']:.2f} at specificity >= "
        f"{figures['target_specificity']:.2f}; torch-vs-ONNX max abs difference "
        f"{figures['onnx_max_abs_difference']:.1e}",
        f"  {'BLESSED' if verdict.blessed else 'NOT BLESSED'}:",
        *(f"    {reason}" for reason in verdict.reasons),
    ]


def _recordings(run: RunResult) -> tuple[set[str], set[str]] | None:
    """The recording ids a run ingested and the names of its sources; None when its table is gone (erasure)."""
    path = run.artifact("ingest", "table")
    try:
        frame = pd.read_parquet(path, columns=["recording_id", "source"])
    except (OSError, TypeError, ValueError):  # no table, or one an older version wrote otherwise
        return None
    return set(frame["recording_id"]), set(frame["source"])


def what_changed(run: RunResult) -> str:
    """How a run's inputs differ from the newest earlier run in the same workdir on the same sources."""
    mine = _recordings(run)
    if mine is None:
        return "its ingest table is gone"
    ids, sources = mine
    earlier = sorted(p for p in run.folder.parent.glob("auscult-training-*") if p.name < run.folder.name)
    for folder in reversed(earlier):
        other = _recordings(RunResult(folder.name, folder, 0.0, read_run(folder)))
        if other is not None and other[1] == sources:
            new, gone = len(ids - other[0]), len(other[0] - ids)
            if not new and not gone:
                return f"{len(ids)} recordings from {', '.join(sorted(sources))}, unchanged since run {folder.name}"
            return f"{len(ids)} recordings: {new} new and {gone} gone since run {folder.name}"
    return f"{len(ids)} recordings from {', '.join(sorted(sources))}; no earlier run here read these sources"


def deploy_notes(run: RunResult) -> list[str]:
    """What the deploy task decided, as its summary artifact says it (its bold lines)."""
    path = run.artifact("deploy", "summary")
    text = Path(path).read_text() if path and Path(path).is_file() else ""
    return [line.strip("*") for line in text.splitlines() if line.startswith("**") and line.endswith("**")]


def monitoring_lines(monitoring: RunResult) -> list[str]:
    """What monitoring of production traffic found: drift, feedback AUROC, and its decision with the reasons."""
    monitor = monitoring.tasks["monitor"]
    drift = ", ".join(f"{k[4:]} {v:.2f}" for k, v in monitor.metrics.items() if k.startswith("psi_"))
    requests = monitor.metrics.get("requests", 0)
    lines = [f"Monitoring {requests:g} requests" + (f": PSI {drift}" if drift else "")]
    if "feedback_auroc" in monitor.metrics:
        labels, auroc = monitor.metrics["feedback_labels"], monitor.metrics["feedback_auroc"]
        lines.append(f"  AUROC on {labels:g} feedback labels: {auroc:.3f}")
    retrain = monitoring.parameter("monitor", "retrain")
    lines.append(f"  decision: {'RETRAIN' if retrain else 'keep the current model'}")
    return lines + [f"    {reason}" for reason in str(monitoring.parameter("monitor", "reasons", "")).splitlines()]


def summary_lines(result: LoopResult, stages: bool = True) -> list[str]:
    """The run's story; without ``stages``, less what the terminal has already shown stage by stage."""
    lines = []
    for number, run in enumerate(result.runs, start=1):
        lines.append(f"Training run {number} ({run.seconds:.0f} s, {run.folder})")
        lines.append(f"  inputs: {result.inputs[number - 1]}")
        if stages:
            lines += stage_lines(run) + verdict_lines(run)
        if "curate" in run.tasks:
            reasons = reason_counts(table.read(run.artifact("curate", "curated"), "curate"))
            if reasons:
                lines.append("  quarantined: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items()))
            lines.append(f"  data profile (each quarantined file and why): {run.artifact('curate', 'profile')}")
        if run.tasks.get("deploy") and run.tasks["deploy"].metrics.get("awaiting_approval"):
            version = run.parameter("deploy", "Output")
            lines.append(
                f"  {version} AWAITS APPROVAL under the change-control plan; production did not move. "
                f"`auscult approve {version} --reason ...` promotes it; why: {run.artifact('deploy', 'summary')}"
            )
        elif run.tasks.get("deploy"):
            lines += [f"  deploy: {note}" for note in deploy_notes(run)]
        if "prep" in run.tasks:
            lines.append(
                f"  data audit (what recording properties alone say of the label): {run.artifact('prep', 'audit')}"
            )
    if result.traffic:
        t = result.traffic
        lines.append(
            f"Serving: {t.sent} requests answered ({t.sent / max(t.seconds, 1e-9):.1f}/s over HTTP), "
            f"{t.rejected} rejected, {t.feedback} feedback labels"
        )
    if result.monitoring:
        lines += monitoring_lines(result.monitoring)
    lines.append(f"Production model: {result.production or 'none'}")
    lines += [f"  {line}" for line in result.production_is]
    lines += [
        f"  RETRAIN: it was trained on data erased at {flag['at']} (erasure {flag['erasure']})"
        for flag in result.erasures
    ]
    lines.append(f"Wall time {result.seconds:.0f} s; peak memory of one process {result.peak_rss_mib:.0f} MiB")
    lines.append(f"Report: {result.report_path.resolve()}")
    return lines


# The stage reports a run report links to, as pages of their own: (task, artifact).
STAGE_REPORTS = (
    ("curate", "profile"),
    ("prep", "audit"),
    ("validate", "report"),
    ("validate", "summary"),
    ("deploy", "summary"),
    ("monitor", "report"),
    ("run-report", "page"),
)


def publish(run: RunResult, folder: Path) -> dict[tuple[str, str], Path]:
    """Copies of a run's reports under ``folder`` with the extension a browser needs (KFP's artifact files have
    none); Markdown ones wrapped in a page. Returns where each went."""
    folder.mkdir(parents=True, exist_ok=True)
    published = {}
    for task, name in STAGE_REPORTS:
        source = run.artifact(task, name)
        if not source or not Path(source).is_file():
            continue
        text, target = Path(source).read_text(), folder / f"{task}-{name}.html"
        if not text.lstrip().lower().startswith("<!doctype html"):
            text = report.page(f"{run.folder.name}: {task} {name}", [("", f"<pre>{html.escape(text)}</pre>")])
        target.write_text(text)
        published[(task, name)] = target
    return published


def loop_report(result: LoopResult) -> str:
    """The local loop's page: the verdict and what production is at the top, then each run's plots, serving and
    monitoring, time per stage, the approvals, and every stage report as a page of its own (relative links)."""
    import matplotlib.pyplot as plt

    home = result.report_path.parent
    workspace = Workspace(home)
    store = open_store(workspace.store_uri)
    # Inside the pipeline root, where erasure edits every text file: a stage report may name a participant's file.
    pages = workspace.pipeline_root / "reports"
    top = [report.verdict(result.production is not None, f"Production model: {result.production or 'none'}")]
    top += [
        report.verdict(False, line.strip()) if "WARNING" in line else f"<p>{html.escape(line.strip())}</p>"
        for line in result.production_is
    ]
    for number, run in enumerate(result.runs, start=1):
        top.append(f"<p><b>Training run {number}</b> ({html.escape(result.inputs[number - 1])}):</p>")
        top.append(report.bullets(line.strip() for line in verdict_lines(run) + deploy_notes(run)))
    sections = [("Verdict", "".join(top))]
    for number, run in enumerate(result.runs, start=1):
        published = publish(run, pages / run.folder.name)
        plots = []
        for stage in ("curate", "validate"):
            path = run.artifact(stage, "profile" if stage == "curate" else "report")
            if path and Path(path).is_file():
                plots += [
                    report.image(f["png"], f"{stage}: {f['caption']}")
                    for f in report.figures_of(Path(path).read_text())
                ]
        links = [
            f'<li><a href="{target.relative_to(home).as_posix()}">{task}: {name}</a></li>'
            for (task, name), target in published.items()
        ]
        body = "".join(plots) + "<p>Its reports, each a page:</p><ul>" + "".join(links) + "</ul>"
        sections.append((f"Training run {number}: {run.folder.name}", body))
    if result.traffic or result.monitoring:
        parts = []
        if result.traffic:
            t = result.traffic
            parts.append(
                f"<p>{t.sent} requests answered over HTTP, {t.rejected} rejected, {t.feedback} feedback labels.</p>"
            )
        if result.monitoring:
            published = publish(result.monitoring, pages / result.monitoring.folder.name)
            if ("monitor", "report") in published:
                page_html = published[("monitor", "report")].read_text()
                parts += [report.image(f["png"], f"monitoring: {f['caption']}") for f in report.figures_of(page_html)]
                href = published[("monitor", "report")].relative_to(home).as_posix()
                parts.append(f'<p><a href="{href}">the monitoring report</a></p>')
            parts.append(report.bullets(line.strip() for line in monitoring_lines(result.monitoring)))
        sections.append(("Serving and monitoring", "".join(parts)))
    fig, axis = plt.subplots(figsize=(8, 3))
    width = 0.8 / max(1, len(result.runs))
    for number, run in enumerate(result.runs):
        seconds = [run.tasks[s].metrics.get("wall_s", 0) if s in run.tasks else 0 for s in STAGES]
        axis.bar([i + number * width for i in range(len(STAGES))], seconds, width, label=f"run {number + 1}")
    axis.set_xticks([i + width * (len(result.runs) - 1) / 2 for i in range(len(STAGES))], STAGES)
    axis.set_ylabel("seconds")
    axis.legend()
    sections.append(("Time per stage", report.figure(fig)))
    trail = Lineage(store).audit_trail()[-20:]
    rows = [(a["time"][:19], a["action"], a["subject"].get("version", ""), who(a["actor"]), a["reason"]) for a in trail]
    sections.append(
        ("Approvals and other governance acts (newest 20)", report.table(["time", "act", "version", "by", "why"], rows))
    )
    sections.append(("The whole summary", "<pre>" + html.escape("\n".join(summary_lines(result))) + "</pre>"))
    return report.page("auscult: one turn of the lifecycle", sections)
