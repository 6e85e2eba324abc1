"""The compiled pipeline YAML, read as KFP would read it: stages, the blessing condition, the GPU request."""

import yaml

from pipelines.compile import compile_pipelines

STAGES = {"ingest", "curate", "label", "prep", "train", "validate", "deploy", "monitor"}


def load(tmp_path):
    paths = compile_pipelines(tmp_path)
    return {p.name: yaml.safe_load(p.read_text()) for p in paths}


def test_all_eight_stages_compile_into_one_pipeline(tmp_path):
    spec = load(tmp_path)["auscult-training.yaml"]
    executors = spec["deploymentSpec"]["executors"]
    assert {name.removeprefix("exec-") for name in executors} == STAGES
    root_tasks = spec["root"]["dag"]["tasks"]
    assert set(root_tasks) == STAGES - {"deploy"} | {"condition-1"}
    assert root_tasks["ingest"]["dependentTasks"] == ["monitor"]


def test_deploy_runs_only_when_blessed(tmp_path):
    spec = load(tmp_path)["auscult-training.yaml"]
    condition = spec["root"]["dag"]["tasks"]["condition-1"]
    assert "validate-Output" in condition["triggerPolicy"]["condition"]
    assert "== true" in condition["triggerPolicy"]["condition"]
    assert set(spec["components"]["comp-condition-1"]["dag"]["tasks"]) == {"deploy"}


def test_training_asks_for_a_gpu(tmp_path):
    spec = load(tmp_path)["auscult-training.yaml"]
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert str(resources["accelerator"]["resourceCount"]) == "1"
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-curate"]["container"].get("resources", {})


def test_every_task_runs_in_the_runtime_image(tmp_path):
    spec = load(tmp_path)["auscult-training.yaml"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert len(images) == 1 and images.pop().startswith("auscult/runtime:")


def test_monitor_pipeline_compiles(tmp_path):
    spec = load(tmp_path)["auscult-monitor.yaml"]
    assert set(spec["root"]["dag"]["tasks"]) == {"monitor"}
