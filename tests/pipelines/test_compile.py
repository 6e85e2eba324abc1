"""The compiled pipeline YAML, read as KFP would read it: stages, the blessing condition, GPU placement,
credentials from Secrets, retries and resources."""

from pathlib import Path

import pytest
import yaml
from kfp.dsl import Artifact, Dataset, Markdown, Metrics, Model

import components
from auscult import layout
from auscult.serving import contract
from auscult.stages.validate import Verdict
from auscult.store import FileStore
from pipelines.compile import Images, compile_pipelines, load
from pipelines.placement import PSEUDONYM_SECRET_KEYS, STORE_SECRET_KEYS, Placement

STAGES = {"ingest", "curate", "label", "prep", "train", "validate", "deploy", "monitor"}
SHARD_TASKS = {"plan-shards", "measure", "prep-shard"}
# Every task that reads or writes the store, the shard tasks included (they read the lake and write windows).
STORE_STAGES = STAGES | {"measure", "prep-shard"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compiled")
    return {p.name: load(p) for p in compile_pipelines(folder)}


def executors(platform):
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_all_eight_stages_compile_into_one_pipeline_with_its_report_as_exit_task(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    executors_found = {name.removeprefix("exec-") for name in spec["deploymentSpec"]["executors"]}
    assert executors_found == STAGES | SHARD_TASKS | {"run-report"}
    root_tasks = spec["root"]["dag"]["tasks"]
    assert set(root_tasks) == {"exit-handler-1", "run-report"}
    # The report runs whatever the tasks inside did: a failed run gets one too.
    assert root_tasks["run-report"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert root_tasks["run-report"]["dependentTasks"] == ["exit-handler-1"]
    assert "status" in root_tasks["run-report"]["inputs"]["parameters"]
    inner = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert set(inner) == STAGES - {"deploy"} | {"condition-4", "plan-shards", "for-loop-2", "for-loop-3"}
    assert inner["ingest"]["dependentTasks"] == ["monitor"]


def test_curate_and_prep_fan_out_over_shards_with_a_parallelism_limit(compiled):
    """One plan, two ParallelFor loops (curate's measuring, prep's windowing) each capped, each collected by a
    merge task that sees the whole table; the split (in label) comes between them, before prep fans out."""
    spec, _ = compiled["auscult-training.yaml"]
    inner = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    for loop, task, merge, after in (
        ("for-loop-2", "measure", "curate", "ingest"),
        ("for-loop-3", "prep-shard", "prep", "label"),
    ):
        assert inner[loop]["iteratorPolicy"] == {"parallelismLimit": Placement().shard_parallelism}
        assert inner[loop]["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-shards-Output"
        assert set(inner[loop]["dependentTasks"]) == {"plan-shards", after}
        assert set(spec["components"][f"comp-{loop}"]["dag"]["tasks"]) == {task}
        collected = inner[merge]["inputs"]["artifacts"]
        assert any(a["taskOutputArtifact"]["producerTask"] == loop for a in collected.values()), merge
    assert "for-loop-2" in inner["curate"]["dependentTasks"] and "curate" in inner["label"]["dependentTasks"]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["shards"]["defaultValue"] == 1 and parameters["shard_size"]["defaultValue"] == 0
    assert inner["label"]["inputs"]["parameters"]["seed"]["componentInputParameter"] == "pipelinechannel--seed"


def test_a_training_operator_moves_the_gpu_from_the_train_task_to_the_job(tmp_path):
    """With --training-operator the train task only launches and watches: no GPU, no GPU node; it passes the
    operator, the workers' service account and the store Secret to the job it renders."""
    placement = Placement(training_operator="trainjob", shard_parallelism=3)
    images = Images(training="registry.example/train:3")
    spec, platform = load(compile_pipelines(tmp_path, images, placement)[0])
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert "nodeSelector" not in executors(platform)["exec-train"]
    inner = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    launch = inner["train"]["inputs"]["parameters"]["launch"]["runtimeValue"]["constant"]
    assert launch["operator"] == "trainjob" and launch["service_account"] == "auscult-trainer"
    assert launch["store_secret"] == contract.STORE_SECRET and launch["gpus_per_worker"] == 1
    assert launch["node_selector"] == contract.GPU_NODE_SELECTOR
    assert inner["for-loop-2"]["iteratorPolicy"] == {"parallelismLimit": 3}
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["training_image"]["defaultValue"] == "registry.example/train:3"
    assert parameters["train_workers"]["defaultValue"] == 1


def test_deploy_runs_only_when_blessed(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    condition = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["condition-4"]["triggerPolicy"]["condition"]
    assert "validate-Output" in condition and "== true" in condition
    assert set(spec["components"]["comp-condition-4"]["dag"]["tasks"]) == {"deploy"}


def test_training_runs_on_a_gpu_node(compiled):
    spec, platform = compiled["auscult-training.yaml"]
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert str(resources["accelerator"]["resourceCount"]) == "1"
    train = executors(platform)["exec-train"]
    assert train["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert train["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    for other in STAGES - {"train"}:
        assert "accelerator" not in spec["deploymentSpec"]["executors"][f"exec-{other}"]["container"]["resources"]
        assert "nodeSelector" not in executors(platform).get(f"exec-{other}", {})


def test_serving_is_placed_on_gpu_nodes_by_default(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["serving_gpus"]["defaultValue"] == 1
    assert parameters["serving"]["defaultValue"] == "seldon-v1"
    deploy_inputs = spec["components"]["comp-condition-4"]["dag"]["tasks"]["deploy"]["inputs"]["parameters"]
    assert deploy_inputs["node_selector"]["runtimeValue"]["constant"] == {"nvidia.com/gpu.present": "true"}
    assert deploy_inputs["tolerations"]["runtimeValue"]["constant"][0]["key"] == "nvidia.com/gpu"


def test_credentials_come_from_secrets_not_parameters(compiled):
    spec, platform = compiled["auscult-training.yaml"]
    for stage in STORE_STAGES:
        secrets = {s["secretName"]: s for s in executors(platform)[f"exec-{stage}"]["secretAsEnv"]}
        store = secrets["auscult-object-store"]
        assert {k["envVar"] for k in store["keyToEnv"]} == set(STORE_SECRET_KEYS.values())
        assert not store.get("optional")
    ingest_secrets = {s["secretName"] for s in executors(platform)["exec-ingest"]["secretAsEnv"]}
    assert "auscult-pseudonym-key" in ingest_secrets
    parameters = " ".join(spec["root"]["inputDefinitions"]["parameters"]).lower()
    assert not any(word in parameters for word in ("secret", "password", "access", "key"))
    assert set(PSEUDONYM_SECRET_KEYS.values()) == {"AUSCULT_PSEUDONYM_KEY"}


def test_the_store_secret_reaches_the_rendered_serving_manifest(tmp_path):
    """``auscult compile --store-secret``: every task reads it, and the deploy task renders the predictor with it."""
    placement = Placement(
        store_secret="team-store",
        pseudonym_secret="team-pseudonyms",
        feedback_secret="team-feedback",
        service_account="team-predictor",
    )
    spec, platform = load(compile_pipelines(tmp_path / "yaml", placement=placement)[0])
    assert {s["secretName"] for e in executors(platform).values() for s in e.get("secretAsEnv", [])} == {
        "team-store",
        placement.pseudonym_secret,
    }
    inputs = spec["components"]["comp-condition-4"]["dag"]["tasks"]["deploy"]["inputs"]["parameters"]
    names = ("store_secret", "pseudonym_secret", "feedback_secret", "service_account")
    constant = {name: inputs[name]["runtimeValue"]["constant"] for name in names}
    assert constant == {
        "store_secret": "team-store",
        "pseudonym_secret": "team-pseudonyms",
        "feedback_secret": "team-feedback",
        "service_account": "team-predictor",
    }

    # The deploy component itself, on a validated model, with what the compiled task passes it.
    validated = tmp_path / "validated"
    validated.mkdir()
    (validated / layout.ONNX_FILE).write_bytes(b"onnx bytes")
    Verdict(True, ["pass: test"], {"auroc": 0.9}, {"input": {}}).save(validated)
    (tmp_path / "table.parquet").write_bytes(b"table")
    manifest = Artifact(uri=str(tmp_path / "manifest.yaml"))
    components.deploy.python_func(
        onnx_model=Model(uri=str(validated)),
        table=Dataset(uri=str(tmp_path / "table.parquet")),
        store_uri=FileStore(tmp_path / "store").root,
        serving_image="registry.example/auscult-serving:1",
        gpus=1,
        node_selector={},
        tolerations=[],
        serving="none",
        namespace="",
        timeout_s=1,
        change_plan="",
        run_id="12345678",
        run_name="auscult-training-test",
        serving_manifest=manifest,
        summary=Markdown(uri=str(tmp_path / "summary.md")),
        metrics=Metrics(uri=str(tmp_path / "metrics")),
        **constant,
    )
    pod = yaml.safe_load(Path(manifest.path).read_text())["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    references = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in pod["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert references == {"team-store", "team-pseudonyms", "team-feedback"}
    assert pod["serviceAccountName"] == "team-predictor"


def test_every_task_has_requests_and_limits_and_no_task_retries(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        for field in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert field in resources, (name, field)
    tasks = {
        **spec["root"]["dag"]["tasks"],
        **spec["components"]["comp-exit-handler-1"]["dag"]["tasks"],
        **spec["components"]["comp-condition-4"]["dag"]["tasks"],
    }
    # A task that failed on its input fails the same way again: the store layer retries what is transient.
    assert not [name for name, task in tasks.items() if "retryPolicy" in task]
    for uncached in ("monitor", "ingest", "prep", "validate", "deploy", "run-report"):
        assert tasks[uncached]["cachingOptions"] == {}, uncached
    # A prep shard's windows are the run's working data, deleted at its end: a cached one would point at nothing.
    assert spec["components"]["comp-for-loop-3"]["dag"]["tasks"]["prep-shard"]["cachingOptions"] == {}
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}


def test_training_runs_in_the_cuda_image_and_the_rest_in_the_runtime_image(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    images = {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}
    assert images.pop("exec-train") == contract.image_ref("training")
    assert set(images.values()) == {contract.image_ref("runtime")}


def test_placement_is_a_compile_option(tmp_path):
    placement = Placement(gpu_node_selector={"pool": "a100"}, gpu_tolerations=(), store_secret="minio-creds")
    images = Images(
        runtime="registry.example/rt:2", training="registry.example/train:2", serving="registry.example/sv:2"
    )
    spec, platform = load(compile_pipelines(tmp_path, images, placement)[0])
    assert executors(platform)["exec-train"]["nodeSelector"]["labels"] == {"pool": "a100"}
    assert "tolerations" not in executors(platform)["exec-train"]
    assert executors(platform)["exec-curate"]["secretAsEnv"][0]["secretName"] == "minio-creds"
    executors_images = {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}
    assert executors_images.pop("exec-train") == "registry.example/train:2"
    assert set(executors_images.values()) == {"registry.example/rt:2"}
    assert spec["root"]["inputDefinitions"]["parameters"]["serving_image"]["defaultValue"] == "registry.example/sv:2"


def test_monitor_pipeline_compiles(compiled):
    spec, platform = compiled["auscult-monitor.yaml"]
    assert set(spec["root"]["dag"]["tasks"]) == {"monitor"}
    assert executors(platform)["exec-monitor"]["secretAsEnv"][0]["secretName"] == "auscult-object-store"


def test_tasks_install_nothing_at_start_up(compiled):
    spec, _ = compiled["auscult-training.yaml"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert "pip install" not in " ".join(executor["container"]["command"]), name
