"""Figures for the benchmark results: how each stage's time grows with the cohort, and served latency by load."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def growth(figures: dict, path: Path) -> None:
    """Per-stage wall time against cohort size on log-log axes, with a slope-1 (linear) guide."""
    sizes = np.asarray(figures["sizes"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for stage, entry in figures["stages"].items():
        times = np.asarray([t if t else np.nan for t in entry["wall_s"]], dtype=float)
        if np.all(np.isnan(times)) or np.nanmax(times) < 0.05:
            continue
        ax.plot(sizes, times, marker="o", label=stage)
    top = max(np.nanmax([t or np.nan for t in e["wall_s"]]) for e in figures["stages"].values())
    ax.plot(sizes, top * sizes / sizes[-1], linestyle="--", color="grey", label="linear")
    ax.set(xscale="log", yscale="log", xlabel="recordings", ylabel="wall time (s)")
    ax.set_xticks(sizes, labels=[f"{size:,.0f}" for size in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    epochs = figures["epochs"] if isinstance(figures["epochs"], list) else [figures["epochs"]]
    ax.set_title(f"Training pipeline stages ({'-'.join(str(e) for e in sorted(set(epochs)))} epochs)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def serving(figures: dict, path: Path) -> None:
    """p50/p95/p99 latency and throughput of the served model at each concurrency."""
    levels = sorted(int(key[1:]) for key in figures if key.startswith("c") and key[1:].isdigit())
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    for name in ("p50_ms", "p95_ms", "p99_ms"):
        latency.plot(levels, [figures[f"c{c}"][name] for c in levels], marker="o", label=name.split("_")[0])
    latency.set(xscale="log", xlabel="concurrency", ylabel="latency (ms)", xticks=levels, xticklabels=levels)
    latency.legend(fontsize="small")
    throughput.bar([str(c) for c in levels], [figures[f"c{c}"]["requests_per_s"] for c in levels], label="served")
    in_process = figures["in_process_requests_per_s"]
    throughput.axhline(in_process, color="grey", linestyle="--", label="in-process")
    throughput.axhline(0.8 * in_process, color="grey", linestyle=":", label="target at c=8 (80%)")
    throughput.set(xlabel="concurrency", ylabel="requests/s", ylim=(0, 1.35 * in_process))
    throughput.legend(fontsize="x-small", loc="upper center", ncol=3)
    fig.suptitle("Seldon microservice over HTTP on 127.0.0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, folder: Path) -> list[Path]:
    """The figures the results allow; returns the paths written."""
    written = []
    if len(results.get("growth", {}).get("sizes", [])) > 1:
        growth(results["growth"], folder / "growth.png")
        written.append(folder / "growth.png")
    if "serving" in results:
        serving(results["serving"], folder / "serving.png")
        written.append(folder / "serving.png")
    return written
