"""Timing helpers and the machine description every figure carries."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable

import numpy as np


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    gpu = None
    if shutil.which("nvidia-smi"):
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True, text=True
        )
        gpu = result.stdout.strip() or None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "gpu": gpu,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def best_rate(run: Callable[[], int], repeats: int = 3) -> float:
    """Items per second of the fastest of ``repeats`` runs (``run`` returns how many items it did)."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return max(rates)


def latencies(call: Callable[[], object], count: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def paired_latencies(
    first: Callable[[], object], second: Callable[[], object], count: int, block: int = 50
) -> tuple[dict, dict]:
    """Latency percentiles of two calls measured in alternating blocks, so a noisy spell on a shared machine
    falls on both rather than on whichever happened to run then. Each block starts after a pause and a few
    unmeasured calls: the other runtime's thread pool spins for a while after its last call, on the same cores."""
    samples: tuple[list[float], list[float]] = ([], [])
    while len(samples[0]) < count:
        for call, out in zip((first, second), samples, strict=True):
            time.sleep(0.05)
            for _ in range(3):
                call()
            for _ in range(min(block, count - len(out))):
                started = time.perf_counter()
                call()
                out.append((time.perf_counter() - started) * 1000)
    return percentiles(samples[0]), percentiles(samples[1])


def percentiles(samples_ms: list[float]) -> dict:
    values = np.asarray(samples_ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "count": len(values),
    }
