"""The Dockerfiles, checked without a Docker engine: they parse, pin their bases, copy files that exist,
install the pinned set from pyproject.toml and run as a non-root user."""

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from auscult.serving import contract
from scripts.requirements import requirements

ROOT = Path(__file__).resolve().parents[2]
IMAGES = sorted((ROOT / "images").glob("*.Dockerfile"))
INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT", "LABEL"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        parsed.append((keyword.upper(), rest.strip()))
    return parsed


def test_the_three_images_exist():
    assert [p.name for p in IMAGES] == ["runtime.Dockerfile", "serving.Dockerfile", "training.Dockerfile"]


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_dockerfile_parses_and_uses_known_instructions(path):
    parsed = instructions(path)
    assert parsed[0][0] == "FROM"
    assert {keyword for keyword, _ in parsed} <= INSTRUCTIONS


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_base_images_are_pinned(path):
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            image = rest.split()[0]
            assert ":" in image and not image.endswith(":latest"), image
            assert re.search(r":\d+\.\d+", image), f"{image} is not pinned to a version"


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_copied_files_exist(path):
    for keyword, rest in instructions(path):
        if keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name} copies {source}, which does not exist"


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user(path):
    users = [rest for keyword, rest in instructions(path) if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the last USER must not be root"
    assert [k for k, _ in instructions(path)].index("USER") > max(
        i for i, (k, _) in enumerate(instructions(path)) if k == "RUN"
    ), "USER comes after the last RUN"


@pytest.mark.parametrize(("name", "extra"), [("runtime", "pipeline"), ("training", "pipeline"), ("serving", "serving")])
def test_installs_the_pinned_set(name, extra):
    runs = [rest for keyword, rest in instructions(ROOT / "images" / f"{name}.Dockerfile") if keyword == "RUN"]
    assert any(f"scripts/requirements.py {extra}" in run for run in runs)
    assert any("pip install -r /tmp/requirements.txt" in run for run in runs)
    for match in (m for run in runs for m in re.finditer(r"pip install ((?:[^&|;])+)", run)):
        for word in match.group(1).split():
            if not word.startswith("-") and word not in (".", "-r") and not word.startswith("/") and "$" not in word:
                assert "==" in word or word.startswith("http"), f"{name}: unpinned {word}"


def test_requirements_are_the_pyproject_pins():
    pins = requirements(["pipeline"])
    assert "kfp==2.17.0" in pins and "torch==2.13.0" in pins and "numpy==1.26.4" in pins
    assert all("==" in pin for pin in pins)
    assert "seldon-core==1.17.1" in requirements(["serving"])


def test_make_targets_build_every_image_with_one_registry_setting():
    makefile = (ROOT / "Makefile").read_text()
    assert "REGISTRY ?=" in makefile and "TAG ?=" in makefile
    assert "IMAGES := runtime training serving" in makefile


def test_the_serving_image_runs_the_serving_contract():
    parsed = instructions(ROOT / "images" / "serving.Dockerfile")
    (command,) = [json.loads(rest) for keyword, rest in parsed if keyword == "CMD"]
    # The launcher reads its ports from the Seldon operator's variables; the image passes no flags.
    assert command == ["python", "-m", contract.SERVER_MODULE]
    assert importlib.util.find_spec(contract.SERVER_MODULE) is not None
    assert "ENTRYPOINT" not in {keyword for keyword, _ in parsed}
    env = dict(word.partition("=")[::2] for keyword, rest in parsed if keyword == "ENV" for word in shlex.split(rest))
    assert env[contract.ENV_HOST] == "0.0.0.0"
    assert env[contract.ENV_TELEMETRY_SPOOL] == contract.SPOOL_PATH
    assert {contract.ENV_HTTP_PORT, contract.ENV_METRICS_PORT}.isdisjoint(env)
    (exposed,) = [rest for keyword, rest in parsed if keyword == "EXPOSE"]
    assert sorted(map(int, exposed.split())) == sorted([contract.HTTP_PORT, contract.METRICS_PORT])
    users = [rest for keyword, rest in parsed if keyword == "USER"]
    assert users[-1] == str(contract.RUN_AS)


def test_the_serving_image_has_a_spool_its_user_can_write():
    runs = [rest for keyword, rest in instructions(ROOT / "images" / "serving.Dockerfile") if keyword == "RUN"]
    owner = f"-o {contract.RUN_AS} -g {contract.RUN_AS}"
    assert any(
        re.search(rf"install -d {owner}( -m 0?7[0-7]{{2}})? {re.escape(contract.SPOOL_PATH)}\b", run) for run in runs
    )
