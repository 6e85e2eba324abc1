import subprocess
import sys

import pytest

from auscult import layout
from pipelines.cli import main, parser


@pytest.mark.parametrize("command", ["run", "generate", "compile", "serve", "monitor", "submit"])
def test_help_explains_each_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: auscult " + command in capsys.readouterr().out


def test_generate_writes_a_cohort(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "c"), "--participants", "3"]) == 0
    assert (tmp_path / "c" / "combined_data.csv").is_file()
    assert "3 participants" in capsys.readouterr().out


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
