"""The terminal of a local run: a line per stage, a progress bar on long work, one line when something fails.

Everything KFP's local runner prints (its own log, each task's streamed output) goes to a log file instead;
the stages' progress lines (:mod:`auscult.progress`) are read from that stream and drawn on the terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from auscult import progress

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_STARTED = re.compile(r"Executing task '(?P<task>[^']+)'")
_TASK_FINISHED = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>[A-Z]+)")
_KFP_LOG = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - [A-Z]+ - ")  # the local runner's own lines, not a task's
BAR_WIDTH = 24


class StageFailed(RuntimeError):
    """A pipeline task failed; ``cause`` is its own last word on why."""

    def __init__(self, stage: str, cause: str, log_path: Path):
        super().__init__(f"{stage} failed: {cause} (full log: {log_path})")
        self.stage, self.cause, self.log_path = stage, cause, log_path


class Console:
    """Lines for a person on ``terminal``; the full story in ``log_path``.

    On an interactive terminal progress is a bar redrawn in place; elsewhere (CI, a pipe) only whole lines
    are written. ``verbose`` also copies everything the log gets onto the terminal.
    """

    def __init__(
        self, log_path: Path, terminal: TextIO | None = None, verbose: bool = False, interactive: bool | None = None
    ):
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "a", buffering=1)
        self.terminal = terminal or sys.stdout
        self.verbose = verbose
        self.interactive = self.terminal.isatty() if interactive is None else interactive
        self._bar_shown = False
        self._started = time.perf_counter()

    def line(self, text: str) -> None:
        """A line for the person (and the log)."""
        self.log.write(text + "\n")
        self._clear_bar()
        self.terminal.write(text + "\n")
        self.terminal.flush()

    def hear(self, line: str) -> None:
        """A progress line of work running in this process: kept in the log, drawn as a bar."""
        self.log.write(line + "\n")
        event = progress.parse(line)
        if isinstance(event, progress.Step):
            self.bar(event, time.perf_counter() - self._started)

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.line(text)

    def bar(self, step: progress.Step, seconds: float, note: str = "") -> None:
        if not self.interactive or self.verbose:
            return
        filled = round(BAR_WIDTH * step.done / max(step.total, 1))
        label = f" {step.label}" if step.label else ""
        text = (
            f"  {step.stage:<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {step.done}/{step.total} {step.unit}"
            f"{label}  {seconds:.0f} s{'  ' + note if note else ''}"
        )
        self.terminal.write("\r\x1b[2K" + text)
        self.terminal.flush()
        self._bar_shown = True

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.terminal.write("\r\x1b[2K")
            self._bar_shown = False

    @contextlib.contextmanager
    def capturing(self, finished: Callable[[str, float], str]) -> Iterator[TaskWatcher]:
        """Send what is printed inside the block to the log, watching it for tasks and their progress.

        ``finished(task, seconds)`` gives the line to show when a task succeeds.
        """
        watcher = TaskWatcher(self, finished)
        try:
            with contextlib.redirect_stdout(watcher), contextlib.redirect_stderr(watcher):
                yield watcher
        finally:
            watcher.write("\n" if watcher._pending else "")
            watcher.flush()

    @contextlib.contextmanager
    def native_errors_to_log(self) -> Iterator[None]:
        """C libraries write to file descriptor 2 directly (libmpg123 warns about a broken mp3): in work done in
        this process, send that to the log; the terminal keeps stdout, bars and lines."""
        sys.stderr.flush()
        saved = os.dup(2)
        self.log.flush()
        os.dup2(self.log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)

    def close(self) -> None:
        self._clear_bar()
        self.log.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TaskWatcher(io.TextIOBase):
    """A text stream standing in for stdout and stderr while KFP runs: lines go to the log, and the ones that
    say a task started, made progress, failed or finished become terminal lines."""

    def __init__(self, console: Console, finished: Callable[[str, float], str]):
        self.console, self.finished = console, finished
        self.task: str | None = None
        self.started = time.perf_counter()
        self.failed: tuple[str, str] | None = None  # (task, cause)
        self.last_words: dict[str, str] = {}  # task -> its last non-empty output line
        self._notes: dict[str, str] = {}
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.console.log.write(_ANSI.sub("", text))
        if self.console.verbose:
            self.console.terminal.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._read(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.console.log.flush()

    def _read(self, line: str) -> None:
        if match := _TASK_STARTED.search(line):
            self.task, self.started = match["task"], time.perf_counter()
            return
        if match := _TASK_FINISHED.search(line):
            task, seconds = match["task"], time.perf_counter() - self.started
            if match["status"] == "SUCCESS":
                self._show(self.finished(task, seconds))
            elif self.failed is None or self.failed[0] != task:
                self.failed = (task, self.last_words.get(task, "it ended without saying why"))
            self.task = None
            return
        event = progress.parse(line)
        if isinstance(event, progress.Failure):
            self.failed = (self.task or event.stage, event.message)
        elif isinstance(event, progress.Step):
            note = self._notes.get(event.stage, "")
            self.console.bar(event, time.perf_counter() - self.started, note)
        elif isinstance(event, progress.Note):
            self._notes[event.stage] = event.text
        if self.task and line.strip() and event is None and not _KFP_LOG.match(line):
            self.last_words[self.task] = line.strip()

    def _show(self, text: str) -> None:
        if self.console.verbose:
            return
        self.console._clear_bar()
        self.console.terminal.write(text + "\n")
        self.console.terminal.flush()
