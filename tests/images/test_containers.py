"""The images, built here by a real engine (scripts/images.py, as `make images`), run what a cluster runs: every
pipeline task in the runtime image as uid 10001, one task exactly as the compiled YAML tells a cluster, and
the predictor started as its manifest starts it, answering the smoke check and the serving contract over HTTP.

What cannot run here: a cluster (the pods' scheduling, Secrets, the Seldon operator) and the CUDA variants.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from auscult import synth
from auscult.lineage import Lineage
from auscult.registry import Registry
from auscult.serving import client, contract, telemetry
from auscult.stages.deploy import ServingSpec, seldon_deployment
from auscult.store import SECRET_KEYS, open_store
from pipelines.compile import Images, compile_pipelines
from pipelines.local import read_run
from tests.auscult.serving.conftest import call, wait_for
from tests.images.engine import ROOT

pytestmark = pytest.mark.slow
USER = 10001


def test_the_images_run_as_uid_10001_with_a_read_only_root(built):
    for image in ("runtime", "serving"):
        found = built.run(
            "run",
            "--rm",
            "--network=none",
            "--read-only",
            built.ref(image),
            "python",
            "-c",
            "import os; print(os.getuid(), os.environ['AUSCULT_IMAGE_BUILD'], os.environ['AUSCULT_IMAGE_REF'])",
        )
        assert found.returncode == 0, found.stderr
        assert found.stdout.split() == [str(USER), built.images[image]["build"], built.ref(image)]
        label = built.run(
            "image", "inspect", "--format", '{{ index .Config.Labels "io.auscult.build" }}', built.ref(image)
        )
        assert label.stdout.strip() == built.images[image]["build"]


@pytest.fixture(scope="module")
def pipeline_in_containers(built, docker_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("in-containers")
    cohort = folder / "cohort"
    synth.generate(cohort, synth.CohortSpec(participants=48, seed=1, effect=1.0, positive_fraction=0.5))
    environment = {
        **built.environment(),
        "DOCKER_HOST": docker_api.host,
        "AUSCULT_IMAGE": built.ref("runtime"),
        # The CPU runtime image trains as well: the CUDA training image cannot be built here.
        "AUSCULT_TRAINING_IMAGE": built.ref("runtime"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.images.pipeline_in_containers", str(folder / "work"), str(cohort)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (run,) = (folder / "work" / "pipeline-root").glob("auscult-training-*")
    return read_run(run), open_store((folder / "work" / "store").as_uri()), done.stdout


def test_every_pipeline_task_ran_in_the_runtime_image_as_uid_10001(built, pipeline_in_containers):
    tasks, store, log = pipeline_in_containers
    stages = {"monitor", "ingest", "curate", "label", "prep", "train", "validate", "deploy"}
    # The shard tasks (curate's measure, prep's prep-shard) ran inside ParallelFor iterations, checked below.
    assert set(tasks) == stages | {"run-report", "plan-shards"}, log[-3000:]
    staged = {name: task for name, task in tasks.items() if name != "plan-shards"}  # it returns a list, no metrics
    assert {name: task.metrics.get("uid") for name, task in staged.items()} == dict.fromkeys(staged, USER)
    # Each task's lineage event, and deploy's acts (register, promote), name the image and its build.
    code = {e["job"]["name"].rsplit(".", 1)[-1]: e["run"]["facets"]["auscult_code"] for e in Lineage(store).events()}
    assert set(code) == stages - {"deploy"} | {"register", "promote"}
    runtime = built.images["runtime"]
    for name, facet in code.items():
        assert (facet["image"], facet["image_build"]) == (runtime["ref"], runtime["build"]), name
    # The model it trained is in the registry, its card naming the image's build.
    registry = Registry(store)
    (version,) = registry.versions()
    assert registry.card(version)["code"]["image_build"] == runtime["build"]


def test_a_task_runs_as_the_compiled_yaml_tells_a_cluster(built, tmp_path):
    """The ingest executor's command and arguments from the compiled pipeline, verbatim but for KFP's ``{{$}}``
    (the executor input a cluster's launcher writes), in the runtime image."""
    (compiled, _) = compile_pipelines(tmp_path / "yaml", Images(runtime=built.ref("runtime")))
    spec = next(yaml.safe_load_all(compiled.read_text()))
    container = spec["deploymentSpec"]["executors"]["exec-ingest"]["container"]
    assert container["image"] == built.ref("runtime")
    cohort, out, store = tmp_path / "cohort", tmp_path / "out", tmp_path / "store"
    synth.generate(cohort, synth.CohortSpec(participants=6, seed=2))
    for folder in (out, store):
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)
    executor_input = {
        "inputs": {
            "parameterValues": {
                "sources": [str(cohort)],
                "store_uri": store.as_uri(),
                "run_id": "yaml-run",
                "run_name": "yaml-run",
            }
        },
        "outputs": {
            "artifacts": {
                name: {"artifacts": [{"type": {"schemaTitle": kind}, "uri": str(out / name), "metadata": {}}]}
                for name, kind in (("table", "system.Dataset"), ("metrics", "system.Metrics"))
            },
            "outputFile": str(out / "executor_output.json"),
        },
    }
    arguments = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    done = built.run(
        "run", "--rm", "--network=none", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
        "-v", f"{cohort}:{cohort}:ro", "-v", f"{out}:{out}", "-v", f"{store}:{store}",
        "-e", "AUSCULT_PSEUDONYM_KEY=yaml-key", "--entrypoint", container["command"][0],
        container["image"], *container["command"][1:], *arguments,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = json.loads((out / "executor_output.json").read_text())
    metrics = written["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["uid"] == USER and metrics["recordings"] > 0
    assert (out / "table").stat().st_uid == USER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def podman_arguments(
    manifest: dict, secrets: dict[str, dict[str, str]], http_port: int, metrics_port: int, volumes: Path
):
    """What a kubelet would make of the predictor's pod: its environment (Secrets and the CPU request filled
    in), user, read-only root and emptyDirs (folders of mode 0777 under ``volumes``, as the kubelet makes them);
    the ports the Seldon operator sets, moved to free ones."""
    pod = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    (container,) = pod["containers"]
    security = {**pod["securityContext"], **container["securityContext"]}
    arguments = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        arguments.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        arguments += ["--security-opt", "no-new-privileges"]
    arguments += [f"--cap-drop={c}" for c in security.get("capabilities", {}).get("drop", [])]
    for variable in container["env"]:
        if "value" in variable:
            value = variable["value"]
        elif "secretKeyRef" in variable["valueFrom"]:
            reference = variable["valueFrom"]["secretKeyRef"]
            value = secrets[reference["name"]][reference["key"]]
        else:  # the CPU request, as the kubelet resolves resourceFieldRef
            value = str(int(float(container["resources"]["requests"]["cpu"])))
        arguments += ["-e", f"{variable['name']}={value}"]
    arguments += ["-e", f"{contract.ENV_HTTP_PORT}={http_port}", "-e", f"{contract.ENV_METRICS_PORT}={metrics_port}"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for mount in container["volumeMounts"]:
        assert mount["name"] in empty_dirs
        folder = volumes / mount["name"]
        folder.mkdir()
        folder.chmod(0o777)
        arguments += ["-v", f"{folder}:{mount['mountPath']}"]
    return arguments, container["image"]


@pytest.fixture(scope="module")
def predictor(built, s3_server, tmp_path_factory):
    """The serving image started as its SeldonDeployment says, on a model in an S3 store (moto on loopback)."""
    from auscult.model import ScreeningNet, export_onnx

    folder = tmp_path_factory.mktemp("predictor")
    store_uri = f"s3://auscult-images-{uuid.uuid4().hex[:8]}/store"
    store = open_store(store_uri)
    export_onnx(ScreeningNet().eval(), folder / "model.onnx")
    registry = Registry(store)
    version = registry.register((folder / "model.onnx").read_bytes(), {}, {})
    registry.promote(version, "test")
    spec = ServingSpec(image=built.ref("serving"), gpus=0)
    manifest = seldon_deployment(version, store_uri, spec)
    secrets = {
        spec.store_secret: {key: os.environ[env] for key, env in SECRET_KEYS.items() if env in os.environ},
        spec.feedback_secret: {"key": "feedback-key"},
        spec.pseudonym_secret: {"key": "pseudonym-key"},
    }
    secrets[spec.store_secret].setdefault("secure", "false")
    port = _free_port()
    arguments, image = podman_arguments(manifest, secrets, port, _free_port(), folder)
    name = f"auscult-predictor-{uuid.uuid4().hex[:8]}"
    started = built.run("run", "-d", "--name", name, "--network=host", *arguments, image)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return call(url, "GET", "/health/ping", timeout=2)[0] == 200
        except OSError:
            return False

    try:
        if not wait_for(ready, timeout_s=120, step_s=0.5):
            raise AssertionError("the predictor did not become ready:\n" + built.run("logs", name).stderr[-3000:])
        yield url, store, version
    finally:
        built.run("rm", "-f", name)


def test_the_serving_image_answers_the_charts_smoke_check(built, predictor):
    url, _, _ = predictor
    # The chart's `helm test` pod: the runtime image, as the pipeline's user, read-only.
    done = built.run("run", "--rm", "--network=host", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
                     built.ref("runtime"), "python", "-m", "auscult.serving.smoke", "--protocol", "seldon", url,
                     timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_serving_image_keeps_the_serving_contract_over_http(predictor):
    url, store, version = predictor
    wave = (0.2 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32)
    answer = client.predict_waveform(url, wave)
    probabilities = answer["data"]["ndarray"][0]
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-4
    assert answer["meta"]["tags"]["model_version"] == version
    assert client.send_feedback(url, answer, "positive") == {"strData": "recorded"}
    request_id = answer["meta"]["tags"]["request_id"]
    # Telemetry reaches the store from inside the container (its spool an emptyDir on a read-only root).
    assert wait_for(lambda: telemetry.feedback_keys(store, request_id), timeout_s=30)
    status, _, text = call(url, "POST", "/api/v1.0/predictions", body=b"not json")
    assert status == 400 and "JSON" in text
