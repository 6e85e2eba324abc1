"""What a running stage tells the person watching it.

A stage writes plain lines, readable as they are in a task's log in the KFP UI, which ``auscult run``
turns into progress bars and stage lines on the terminal:

```
[auscult] curate: 237/473 recordings                 progress (a bar on a terminal)
[auscult] train: epoch 3/10: 12/15 batches           progress with a label
[auscult] train: epoch 3/10 loss 0.4123, ...         a note: a line worth keeping
[auscult] ingest failed: cannot read /data/m.csv     why the stage stopped, as its last line
```

This module is the only place that writes or reads that format.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from auscult.errors import InputError
from auscult.resources import peak_rss_mib

PREFIX = "[auscult] "
_FAILURE = re.compile(r"(?P<stage>[\w-]+) failed: (?P<message>.*)")
_STEP = re.compile(r"(?P<stage>[\w-]+): (?:(?P<label>.+): )?(?P<done>\d+)/(?P<total>\d+) (?P<unit>[a-z][\w-]*)")
_NOTE = re.compile(r"(?P<stage>[\w-]+): (?P<text>.*)")


@dataclass(frozen=True)
class Step:
    """``done`` of ``total`` ``unit`` of a stage's work (of its ``label`` part, e.g. one epoch)."""

    stage: str
    done: int
    total: int
    unit: str
    label: str = ""

    def __str__(self) -> str:
        label = f"{self.label}: " if self.label else ""
        return f"{PREFIX}{self.stage}: {label}{self.done}/{self.total} {self.unit}"


@dataclass(frozen=True)
class Note:
    stage: str
    text: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.stage}: {self.text}"


@dataclass(frozen=True)
class Failure:
    stage: str
    message: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.stage} failed: {self.message}"


Event = Step | Note | Failure


def parse(line: str) -> Event | None:
    """The event a line of a task's log carries, or None for any other line."""
    line = line.strip()
    if not line.startswith(PREFIX):
        return None
    rest = line[len(PREFIX) :]
    if match := _FAILURE.fullmatch(rest):
        return Failure(match["stage"], match["message"])
    if match := _STEP.fullmatch(rest):
        return Step(match["stage"], int(match["done"]), int(match["total"]), match["unit"], match["label"] or "")
    if match := _NOTE.fullmatch(rest):
        return Note(match["stage"], match["text"])
    return None


def emit(line: object) -> None:
    """Print at once: a task's output is a pipe, which Python would otherwise buffer until the task ends."""
    print(line, flush=True)


class Tracker:
    """Progress of ``total`` items as :class:`Step` lines: at most one per ``interval_s``, and always the last."""

    def __init__(
        self,
        stage: str,
        total: int,
        unit: str,
        output: Callable[[str], None] = emit,
        label: str = "",
        interval_s: float = 0.5,
    ):
        self.stage, self.total, self.unit, self.label = stage, total, unit, label
        self.output, self.interval_s = output, interval_s
        self._last = -float("inf")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done >= self.total or now - self._last >= self.interval_s:
            self._last = now
            self.output(str(Step(self.stage, done, self.total, self.unit, self.label)))


@contextmanager
def task(stage: str, metrics: Any) -> Iterator[None]:
    """The frame of a stage running as a pipeline task.

    On success it logs the stage's cost (``wall_s``, ``peak_rss_mib``) and the user it ran as (``uid``) to
    ``metrics`` (anything with ``log_metric``, such as KFP's ``Metrics``). An :class:`InputError` ends the task
    with its message as the log's last line and exit status 1, without a traceback: the person must fix the
    input, and the message says how. Any other exception is a fault of ours and keeps its traceback.
    """
    started = time.perf_counter()
    try:
        yield
    except InputError as error:
        emit(Failure(stage, str(error)))
        sys.exit(1)
    metrics.log_metric("wall_s", round(time.perf_counter() - started, 2))
    metrics.log_metric("peak_rss_mib", peak_rss_mib())
    metrics.log_metric("uid", os.getuid())
