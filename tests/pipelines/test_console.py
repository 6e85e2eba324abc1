"""The terminal of a local run, fed what KFP's local runner prints."""

import io

from auscult import progress
from pipelines.console import Console

CYAN, RESET = "\x1b[96m", "\x1b[0m"


def feed(console: Console, lines: list[str], finished=lambda task, seconds: f"  {task} done") -> tuple:
    with console.capturing(finished) as watcher:
        for line in lines:
            print(line)
    return watcher


def test_a_task_becomes_one_line_and_kfp_output_stays_in_the_log(tmp_path):
    terminal = io.StringIO()
    with Console(tmp_path / "run.log", terminal=terminal, interactive=False) as console:
        watcher = feed(
            console,
            [
                f"09:00:00.000 - INFO - Executing task {CYAN}'curate'{RESET}",
                '    {"executor_input": "hundreds of lines of JSON"}',
                str(progress.Step("curate", 3, 10, "recordings")),
                f"09:00:01.000 - INFO - Task {CYAN}'curate'{RESET} finished with status \x1b[92mSUCCESS{RESET}",
            ],
        )
    assert terminal.getvalue() == "  curate done\n"
    assert watcher.failed is None
    log = (tmp_path / "run.log").read_text()
    assert "executor_input" in log and "3/10 recordings" in log


def test_an_interactive_terminal_gets_a_bar_redrawn_in_place(tmp_path):
    terminal = io.StringIO()
    with Console(tmp_path / "run.log", terminal=terminal, interactive=True) as console:
        feed(
            console,
            [
                "Executing task 'train'",
                str(progress.Note("train", "epoch 1/2 loss 0.6")),
                str(progress.Step("train", 5, 10, "batches", label="epoch 2/2")),
                "Task 'train' finished with status SUCCESS",
            ],
        )
    shown = terminal.getvalue()
    assert "\r\x1b[2K" in shown and "[############............] 5/10 batches epoch 2/2" in shown
    assert "epoch 1/2 loss 0.6" in shown  # the last note rides along the bar
    assert shown.endswith("  train done\n")


def test_a_stage_that_says_why_it_failed_is_reported_with_its_words(tmp_path):
    with Console(tmp_path / "run.log", terminal=io.StringIO()) as console:
        watcher = feed(
            console,
            [
                "Executing task 'ingest'",
                str(progress.Failure("ingest", "cannot read /data/m.csv: not UTF-8")),
                "Task 'ingest' finished with status FAILURE",
            ],
        )
    assert watcher.failed == ("ingest", "cannot read /data/m.csv: not UTF-8")


def test_a_crash_is_reported_with_the_traceback_s_last_line(tmp_path):
    with Console(tmp_path / "run.log", terminal=io.StringIO()) as console:
        watcher = feed(
            console,
            [
                "Executing task 'prep'",
                "    Traceback (most recent call last):",
                '      File "prep.py", line 1, in <module>',
                "    MemoryError: 256 GiB",
                "",
                "Task 'prep' finished with status FAILURE",
            ],
        )
    assert watcher.failed == ("prep", "MemoryError: 256 GiB")


def test_verbose_shows_everything(tmp_path):
    terminal = io.StringIO()
    with Console(tmp_path / "run.log", terminal=terminal, verbose=True) as console:
        feed(console, ["Executing task 'label'", "anything at all", "Task 'label' finished with status SUCCESS"])
    assert "anything at all" in terminal.getvalue()


def test_progress_lines_read_back_as_what_was_written():
    for event in (
        progress.Step("curate", 3, 10, "recordings"),
        progress.Step("train", 1, 15, "batches", label="epoch 3/10"),
        progress.Note("train", "epoch 3/10 loss 0.4123, validation AUROC 0.931 (1.2 s)"),
        progress.Note("ingest", "covid: 1201 recordings"),
        progress.Failure("ingest", "source 'x': no such folder"),
    ):
        assert progress.parse("    " + str(event)) == event
    assert progress.parse("curate: 3/10 recordings") is None  # not ours without the prefix


def test_a_tracker_speaks_at_most_once_per_interval_and_always_at_the_end():
    lines = []
    tracker = progress.Tracker("prep", 1000, "recordings", lines.append, interval_s=3600)
    for done in range(1, 1001):
        tracker(done)
    assert [progress.parse(line).done for line in lines] == [1, 1000]
