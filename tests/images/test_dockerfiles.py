"""The Dockerfiles and the build script, checked without an engine (test_containers.py builds and runs them):
they parse, pin their public bases, copy files that exist, name no host path, download nothing themselves
(only images/python.sh does, on NVIDIA's Ubuntu base), install the pinned set from a wheel folder and run as
a non-root user."""

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from auscult.serving import contract
from scripts.images import builds, wheel_listing, wheel_set
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


def test_two_dockerfiles_make_the_three_images():
    assert [p.name for p in IMAGES] == ["runtime.Dockerfile", "serving.Dockerfile"]
    for variant in ("cpu", "gpu"):
        made = {b.image: b.dockerfile for b in builds(variant, None)}
        assert made == {
            "runtime": "runtime.Dockerfile",
            "training": "runtime.Dockerfile",
            "serving": "serving.Dockerfile",
        }


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_dockerfile_parses_and_uses_known_instructions(path):
    parsed = instructions(path)
    assert [k for k, _ in parsed[:2]] == ["ARG", "FROM"] and parsed[1][1] == "${BASE_IMAGE}"
    assert {keyword for keyword, _ in parsed} <= INSTRUCTIONS


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_the_default_base_is_a_pinned_public_image(path):
    (default,) = [rest.partition("=")[2] for keyword, rest in instructions(path) if rest.startswith("BASE_IMAGE=")]
    assert re.search(r":\d+\.\d+", default) and not default.endswith(":latest"), default


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_copied_files_exist_and_nothing_is_downloaded(path):
    for keyword, rest in instructions(path):
        if keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert not source.startswith("/"), f"{path.name} copies the host path {source}"
                if source.startswith("${WHEELS}/"):  # the wheel folder scripts/images.py prepares in the context
                    continue
                assert (ROOT / source).exists(), f"{path.name} copies {source}, which does not exist"
        if keyword == "RUN":
            assert "http" not in rest and "curl" not in rest and "wget" not in rest, rest
            if "pip install" in rest:
                assert "--no-index --find-links /wheels" in rest and "type=bind,source=${WHEELS}" in rest, rest


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user(path):
    users = [rest for keyword, rest in instructions(path) if keyword == "USER"]
    assert users and users[-1] == str(contract.RUN_AS), "the last USER must be the pods' uid"
    assert [k for k, _ in instructions(path)].index("USER") > max(
        i for i, (k, _) in enumerate(instructions(path)) if k == "RUN"
    ), "USER comes after the last RUN"


@pytest.mark.parametrize(("name", "extra"), [("pipeline-cpu", "pipeline"), ("serving-cpu", "serving")])
def test_wheel_sets_are_the_pyproject_pins(name, extra):
    assert wheel_set(name) == sorted(requirements([extra]))
    assert wheel_listing(name).splitlines()[1:] == wheel_set(name)
    gpu = wheel_set("serving-gpu")
    assert "onnxruntime-gpu==1.26.0" in gpu and not any(p.startswith("onnxruntime==") for p in gpu)


def test_image_names_follow_one_scheme():
    assert contract.image_ref("runtime") == "ghcr.io/auscult/auscult-runtime:0.1.0"
    assert (
        contract.image_ref("serving", registry="r.example/x/", tag="2", variant="cpu")
        == "r.example/x/auscult-serving:2-cpu"
    )
    with pytest.raises(ValueError, match="unknown image"):
        contract.image_ref("trainer")
    from auscult.stages.deploy import ServingSpec
    from components.image import IMAGE, SERVING_IMAGE, TRAINING_IMAGE

    assert (IMAGE, TRAINING_IMAGE, SERVING_IMAGE) == tuple(contract.image_ref(i) for i in contract.IMAGES)
    assert ServingSpec().image == SERVING_IMAGE
    helper = (ROOT / "charts" / "auscult" / "templates" / "_helpers.tpl").read_text()
    assert '"%s/auscult-%s:%s"' in helper
    values = (ROOT / "charts" / "auscult" / "values.yaml").read_text()
    assert f"registry: {contract.IMAGE_REGISTRY}" in values


def test_requirements_are_the_pyproject_pins():
    pins = requirements(["pipeline"])
    assert "kfp==2.17.0" in pins and "torch==2.13.0" in pins and "numpy==1.26.4" in pins
    assert all("==" in pin for pin in pins)
    assert "seldon-core==1.17.1" in requirements(["serving"])


def test_make_images_builds_with_one_registry_setting():
    makefile = (ROOT / "Makefile").read_text()
    assert "REGISTRY ?=\n" in makefile and "TAG ?=\n" in makefile  # empty: scripts/images.py's defaults
    assert 'IMAGE_SETTINGS = --registry "$(REGISTRY)" --tag "$(TAG)"' in makefile
    assert (
        "scripts/images.py build $(IMAGE_SETTINGS)" in makefile
        and "scripts/images.py push $(IMAGE_SETTINGS)" in makefile
    )


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


def test_the_build_digest_follows_the_base_the_image_and_the_arguments():
    from scripts.images import inputs_digest

    runtime, training, _ = builds("cpu", "localhost/base")
    arguments = {"WHEELS": "build/wheels/pipeline-cpu", "AUSCULT_CODE_VERSION": "abc"}
    digest = inputs_digest(runtime, "sha256:1", arguments)
    assert digest == inputs_digest(runtime, "sha256:1", dict(arguments))
    assert len({digest, inputs_digest(runtime, "sha256:2", arguments), inputs_digest(training, "sha256:1", arguments),
                inputs_digest(runtime, "sha256:1", {**arguments, "AUSCULT_CODE_VERSION": "def"})}) == 4  # fmt: skip
