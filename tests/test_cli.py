import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from auscult import layout
from pipelines.cli import main, parser


def auscult(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command line as a person runs it: a process of its own."""
    command = [sys.executable, "-m", "pipelines.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def unreadable_manifest(folder: Path) -> list[object]:
    manifest = folder / "manifest.csv"
    manifest.write_bytes(b"\xff\xfe not a CSV")
    return [manifest]


def an_empty_store(folder: Path) -> list[object]:
    return ["uploads", "telemetry"]


def negatives_only(folder: Path) -> list[object]:
    from auscult import synth

    synth.generate(folder / "cohort", synth.CohortSpec(participants=12, seed=1))
    manifest = folder / "negatives.csv"
    rows = ["path,label,participant"] + [
        f"{path},negative,{path.parent.name}" for path in sorted((folder / "cohort").glob("*/*/*.wav"))
    ]
    manifest.write_text("\n".join(rows) + "\n")
    return [manifest]


# The runs that stop early, by the test that reads each: the sources it is given, written into its folder.
EARLY_STOPS = {
    "test_a_stage_that_fails_on_its_input_ends_the_run_with_one_line_naming_it": unreadable_manifest,
    "test_a_run_with_nothing_to_ingest_stops_saying_what_to_give": an_empty_store,
    "test_a_source_with_one_class_stops_after_label_with_the_counts": negatives_only,
}


class EarlyStops:
    """``auscult run --source ... --workdir FOLDER/w``, a process of its own as ``auscult`` starts one, for each
    selected test of :data:`EARLY_STOPS`, all started at once: each keeps about one core busy (its own start, then
    one task's process at a time), so that on two cores three take about the time of two, not of three."""

    def __init__(self, folder: Path, names: list[str]):
        self.folder, self.started = folder, {}
        for name in names:
            self.start(name)

    def start(self, name: str) -> None:
        own = self.folder / name
        own.mkdir()
        sources = [a for source in EARLY_STOPS[name](own) for a in ("--source", source)]
        command = [sys.executable, "-m", "pipelines.cli", "run", *map(str, sources), "--workdir", str(own / "w")]
        # Into files, not pipes: nobody reads a pipe until the test runs, and a full one would stall the run.
        with open(own / "stdout", "w") as out, open(own / "stderr", "w") as err:
            self.started[name] = subprocess.Popen(command, stdout=out, stderr=err, text=True)

    def result(self, name: str, timeout: float = 300) -> tuple[Path, subprocess.CompletedProcess]:
        """The run's folder (its sources, and its workdir ``w``), and the finished process as ``auscult`` gives it."""
        if name not in self.started:
            self.start(name)
        process, own = self.started[name], self.folder / name
        process.wait(timeout=timeout)
        read = [(own / stream).read_text() for stream in ("stdout", "stderr")]
        return own, subprocess.CompletedProcess(process.args, process.returncode, *read)

    def stop(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def early_stops(request, tmp_path_factory):
    stops = EarlyStops(
        tmp_path_factory.mktemp("early-stops"), [i.name for i in request.session.items if i.name in EARLY_STOPS]
    )
    yield stops
    stops.stop()


@pytest.mark.parametrize("command", ["run", "generate", "compile", "serve", "predict", "monitor", "submit", "evaluate"])
def test_help_explains_each_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: auscult " + command in capsys.readouterr().out


def test_generate_writes_a_cohort(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "c"), "--participants", "3"]) == 0
    assert (tmp_path / "c" / "combined_data.csv").is_file()
    assert "3 participants" in capsys.readouterr().out


def test_generate_plants_a_channel_confound(tmp_path, capsys):
    argv = ["generate", str(tmp_path / "c"), "--participants", "8", "--confound", "1", "--positive-fraction", "0.5"]
    assert main(argv) == 0
    rows = (tmp_path / "c" / "combined_data.csv").read_text().splitlines()[1:]
    for row in rows:  # a confound of 1 makes the channel the label
        assert ("positive" in row) == row.endswith("call-line"), row


def test_generate_refuses_two_device_choices(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "c"), "--shifted", "--confound", "0.5"]) == 1
    assert "give one of them" in capsys.readouterr().err


def test_compile_writes_yaml(tmp_path):
    assert (
        main(
            [
                "compile",
                "--output-dir",
                str(tmp_path),
                "--image",
                "registry.example/auscult-runtime:1",
                "--training-image",
                "registry.example/auscult-training:1",
            ]
        )
        == 0
    )
    text = (tmp_path / "auscult-training.yaml").read_text()
    assert "registry.example/auscult-runtime:1" in text


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "run" in result.stdout and "serve" in result.stdout
    assert parser().prog == "auscult"


def test_monitor_command_records_a_decision(tmp_path, capsys):
    from auscult.store import FileStore

    store = FileStore(tmp_path / "store")
    assert main(["monitor", "--store", store.root]) == 0
    out = capsys.readouterr().out
    assert "no model in production" in out
    assert store.list(layout.MONITOR_DECISIONS) and store.list(layout.MONITOR_REPORTS)


def test_a_missing_source_fails_at_once_with_one_line(tmp_path):
    result = auscult("run", "--source", tmp_path / "no-such-dir", "--workdir", tmp_path / "w", timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"auscult run: source '{tmp_path / 'no-such-dir'}' does not exist: "
        "give a dataset folder, a .csv manifest, an s3://bucket/prefix holding either, 'uploads' or 'telemetry'"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "w").exists(), "nothing starts before the sources are checked"


def test_a_stage_that_fails_on_its_input_ends_the_run_with_one_line_naming_it(early_stops, tmp_path, browser):
    """An unreadable manifest fails inside the ingest task, once, and the run says so in one line."""
    folder, result = early_stops.result("test_a_stage_that_fails_on_its_input_ends_the_run_with_one_line_naming_it")
    manifest = folder / "manifest.csv"
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"auscult run: ingest failed: cannot read {manifest}: ")
    log = line.rsplit("(full log: ", 1)[1].rstrip(")")
    assert "Traceback" not in result.stdout + result.stderr
    text = Path(log).read_text()
    assert text.count("Executing task 'ingest'") == 1, "no retry of a task that failed on its input"
    assert "executor_input" not in result.stdout
    # The failed run has its report too: the pipeline's exit task wrote it, saying where and why it stopped.
    (page,) = (folder / "w" / "pipeline-root").glob("auscult-training-*/run-report/page")
    said = page.read_text()
    assert ": FAILED</title>" in said and "stopped before validation" in said and "stopped at <b>ingest</b>" in said
    (tmp_path / "failed.html").write_text(said)
    shown = browser.open(tmp_path / "failed.html", tmp_path / "failed.png")
    assert shown.title.endswith(": FAILED") and not shown.broken_images and not shown.broken_links, shown


def test_a_run_with_nothing_to_ingest_stops_saying_what_to_give(early_stops):
    """A first run on an empty store (no uploads, no telemetry) stops at ingest and says what to set."""
    _, result = early_stops.result("test_a_run_with_nothing_to_ingest_stops_saying_what_to_give")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("auscult run: ingest failed: no recordings in sources ['uploads', 'telemetry']")
    assert "auscult upload FOLDER s3://" in line and "Traceback" not in result.stdout + result.stderr


def test_readme_and_help_say_the_same():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in commands._choices_actions:
        assert f"| `auscult {action.dest}` | {action.help} |" in readme, action.dest


@pytest.mark.parametrize("command", ["run", "generate", "compile", "serve", "predict", "monitor", "submit", "evaluate"])
def test_every_option_has_help_and_one_default(command):
    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[command]
    assert sub.description
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    text = sub.format_help()
    assert "(default: None)" not in text
    assert not [line for line in text.splitlines() if line.count("(default:") > 1]


def test_run_s_defaults_are_the_loop_s():
    from pipelines.loop import LoopConfig

    args = parser().parse_args(["run"])
    defaults = LoopConfig()
    for name in (
        "participants",
        "traffic_participants",
        "effect",
        "epochs",
        "seed",
        "min_auroc",
        "min_participants_per_class",
        "min_margin_over_metadata",
        "max_regression",
    ):
        assert getattr(args, name) == getattr(defaults, name), name
    assert args.no_channel_guard != defaults.guard_channel


def test_a_source_with_one_class_stops_after_label_with_the_counts(early_stops):
    """A manifest that labels every recording negative: label stops the run, counting each class."""
    folder, result = early_stops.result("test_a_source_with_one_class_stops_after_label_with_the_counts")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("auscult run: label failed: negative: ")
    assert "positive: 0 participants; training needs at least 67 of each" in line
    assert "Traceback" not in result.stdout + result.stderr
    shown = result.stdout
    assert "  curate " in shown and "  prep " not in shown, "the run stops after label"
    assert "label failed" in (folder / "w" / "report.html").read_text()


def test_serving_an_empty_store_fails_in_one_line_before_starting_anything(tmp_path, capsys):
    assert main(["serve", "--workdir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"auscult serve: {(tmp_path / 'store').resolve().as_uri()} has no production model: "
        "run `auscult run` first, or name a --version"
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--epochs", "0"],
        ["run", "--min-participants-per-class", "0"],
        ["generate", "x", "--participants", "-2"],
        ["serve", "--port", "80000"],
        ["compile", "--gpu-node-selector", "novalue"],
        ["evaluate", "--source", "x", "--bootstrap", "3"],
        ["generate", "x", "--confound", "1.5"],
    ],
)
def test_impossible_options_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_a_path_the_command_cannot_write_is_one_line_naming_it(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["generate", str(blocker / "cohort"), "--participants", "2"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("auscult generate: ") and str(blocker) in line


def test_a_second_run_on_unchanged_sources_reads_no_recording_again(tmp_path):
    """Counted by inotify on the cohort's folder, so that the reads of every process a run starts (each KFP task is
    one) are seen: the first run reads every recording, the second none; each reads the small metadata file."""
    from auscult.audio import FORMATS
    from tests.file_opens import FileOpens

    # Each run stops after label (the participant minimum is out of reach): what is counted happens at ingest, and
    # tests/pipelines/test_loop.py runs the whole loop. Curate reads the lake's copies, not the source.
    run = ["run", "--workdir", tmp_path / "w", "--participants", 40, "--min-participants-per-class", 1000]
    first = auscult(*run)
    assert first.returncode == 1 and "label failed" in first.stderr, first.stderr
    cohort = tmp_path / "w" / "data" / "cohort"
    with FileOpens(cohort) as opens:
        second = auscult(*run)
        opened = opens.opened()
    assert second.returncode == 1 and "label failed" in second.stderr, second.stderr
    assert not [path for path in opened if path.rsplit(".", 1)[-1] in FORMATS], opened
    assert "combined_data.csv" in opened
    *_, log = sorted((tmp_path / "w" / "logs").glob("run-*.log"))  # the second run's: named by when it began
    assert "cohort (coswara): 157 recordings; 0 files read, 160 unchanged since an earlier run" in log.read_text()
