"""The run report: one self-contained page that tells a pipeline run's story, whatever its end.

The pipeline's last task builds it (under ``dsl.ExitHandler``, so a failed run gets one too). That task cannot read
the artifacts of the tasks it follows, so the page is drawn from what they left in the store: their lineage events
(verdict, memberships, code and image, registrations and approvals) and their plots (``layout.run_figures``).
"""

from __future__ import annotations

import html
from datetime import datetime

from auscult import layout, report
from auscult.lineage import AUDIT_FACET, Lineage, RunRef
from auscult.store import ObjectStore

SUCCEEDED = "SUCCEEDED"
# The tasks that record their completion in the lineage, in the order the pipeline runs them.
# Deploy records acts (register, promote, await approval) rather than a completion: it is judged apart.
RECORDED = ("monitor", "ingest", "curate", "label", "prep", "train", "validate")
# The stages whose plots the page shows, in the order a reader wants them, and what their figures show.
PLOTTED = {"monitor": "production before this run", "curate": "data profile", "validate": "validation"}
# Where each stage's full report is in the KFP UI: its task's artifacts.
STAGE_ARTIFACTS = {
    "curate": "profile (HTML)",
    "label": "review_queue (CSV)",
    "prep": "audit (Markdown)",
    "validate": "report (HTML), summary (Markdown)",
    "deploy": "summary (Markdown), serving_manifest",
    "monitor": "report (HTML)",
}
FIGURES = (
    ("auroc", "test AUROC"),
    ("auroc_ci_low", "its 95% CI, lower bound"),
    ("auroc_ci_high", "upper bound"),
    ("sensitivity_at_target_specificity", "sensitivity at the operating point"),
    ("specificity_at_threshold", "specificity at the operating point"),
    ("brier", "Brier score"),
    ("onnx_max_abs_difference", "torch vs ONNX, max abs difference"),
)


def keep_figures(store: ObjectStore, run: RunRef, stage: str, page_html: str) -> None:
    """Keep the plots of a stage's report for the run report (the tables stay in the artifact: they may name
    files)."""
    store.put_json(layout.run_figures(run.run_id, stage), report.figures_of(page_html))


def _of_run(event: dict, run: RunRef) -> bool:
    return event["run"]["facets"].get("parent", {}).get("run", {}).get("runId") == run.run_id


def page(store: ObjectStore, run: RunRef, state: str, error: str = "") -> str:
    """The report of ``run``, which ended in ``state`` (KFP's: SUCCEEDED, FAILED, ...) with ``error``."""
    events = [e for e in Lineage(store).events() if _of_run(e, run)]
    tasks = {
        e["job"]["name"].removeprefix(f"{run.pipeline}."): e
        for e in events
        if e["job"]["name"].startswith(f"{run.pipeline}.")
    }
    acts = [
        {"time": e["eventTime"], **e["run"]["facets"][AUDIT_FACET]} for e in events if AUDIT_FACET in e["run"]["facets"]
    ]
    verdict = tasks.get("validate", {}).get("run", {}).get("facets", {}).get("auscult_verdict")
    sections = [("Verdict", _verdict(state, error, verdict, acts, tasks))]
    if verdict:
        figures = verdict.get("figures", {})
        rows = [
            (label, f"{figures[name]:.1e}" if name == "onnx_max_abs_difference" else f"{figures[name]:.3f}")
            for name, label in FIGURES
            if name in figures
        ]
        sections.append(("Key figures (test participants)", report.table(["figure", "value"], rows)))
    for stage, what in PLOTTED.items():
        plots = _figures(store, run, stage)
        if plots:
            sections.append((f"{stage}: {what}", "".join(report.image(p["png"], p["caption"]) for p in plots)))
    if len(tasks) > 1:
        sections.append(("Time per stage", _timeline(tasks)))
    if tasks:
        sections += [("Lineage", _lineage(tasks)), ("Stage reports", _where_reports_are(tasks))]
    title = f"auscult run {run.name}: {state}"
    return report.page(title, sections)


def _verdict(state: str, error: str, verdict: dict | None, acts: list[dict], tasks: dict[str, dict]) -> str:
    parts = [report.verdict(state == SUCCEEDED, f"The run {state.lower()}.")]
    if error:
        parts.append(f"<pre>{html.escape(error)}</pre>")
    if state != SUCCEEDED:
        stopped = next((task for task in RECORDED if task not in tasks), None)
        if stopped is None and verdict and verdict.get("blessed"):
            stopped = "deploy"
        if stopped:
            parts.append(
                f"<p>It stopped at <b>{stopped}</b>, the first task that did not complete: that task's log in the KFP "
                "UI (or the run's log file) ends with the line that says why.</p>"
            )
    if verdict is None:
        parts.append("<p>The run stopped before validation: no model was judged.</p>")
    else:
        blessed = bool(verdict.get("blessed"))
        parts.append(report.verdict(blessed, "The model was BLESSED." if blessed else "The model was NOT blessed."))
        parts.append(report.bullets(verdict.get("reasons", [])))
    if acts:
        parts.append("<p>What happened to it:</p>")
        parts.append(
            report.bullets(
                f"{act['time'][:19]} {act['action']} {act['subject'].get('version', '')}: {act['reason']}"
                for act in acts
            )
        )
    elif verdict and verdict.get("blessed") and state == SUCCEEDED:
        parts.append(
            "<p>Deploy registered nothing new and moved nothing (these weights were registered before): its summary "
            "artifact says why.</p>"
        )
    return "".join(parts)


def _figures(store: ObjectStore, run: RunRef, stage: str) -> list[dict]:
    try:
        return list(store.get_json(layout.run_figures(run.run_id, stage)))
    except KeyError:
        return []


def _timeline(tasks: dict[str, dict]) -> str:
    """How long each task took, as far as the lineage says: the time between a task's end and the one before."""
    import matplotlib.pyplot as plt

    ordered = sorted(tasks.items(), key=lambda item: item[1]["eventTime"])
    ends = [datetime.fromisoformat(e["eventTime"]) for _, e in ordered]
    names = [name for name, _ in ordered][1:]
    seconds = [(later - earlier).total_seconds() for earlier, later in zip(ends, ends[1:], strict=False)]
    fig, axis = plt.subplots(figsize=(8, 2.8))
    axis.bar(names, seconds, color="#4a7ab5")
    axis.set_ylabel("seconds")
    axis.set_title(f"from the end of {ordered[0][0]} to the end of each task")
    return report.figure(fig)


def _lineage(tasks: dict[str, dict]) -> str:
    rows = []
    for name, event in sorted(tasks.items(), key=lambda item: item[1]["eventTime"]):
        facets = event["run"]["facets"]
        code = facets.get("auscult_code", {})
        counts = facets.get("auscult_membership", {}).get("counts", {})
        rows.append(
            (
                name,
                event["eventTime"][:19],
                code.get("commit") or "",
                code.get("image") or "(no image: run on the host)",
                ", ".join(f"{k} {v}" for k, v in counts.items()),
            )
        )
    return report.table(["task", "completed (UTC)", "code", "image", "recordings"], rows)


def _where_reports_are(tasks: dict[str, dict]) -> str:
    items = [f"{stage}: {artifacts}" for stage, artifacts in STAGE_ARTIFACTS.items() if stage in tasks]
    return "<p>Each stage's full report is an artifact of its task (open the task in the KFP UI):</p>" + report.bullets(
        items
    )
