from auscult import layout
from auscult.registry import Registry
from auscult.serving import contract
from auscult.serving.contract import MODEL_NAME
from auscult.stages.deploy import ServingSpec, deploy, seldon_deployment


def test_seldon_deployment_requests_a_gpu_on_gpu_nodes():
    manifest = seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(image="reg/serving:1"))
    assert manifest["kind"] == "SeldonDeployment"
    pod = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "reg/serving:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": contract.ENV_MODEL_VERSION, "value": "v0001-abc"} in container["env"]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert from_secret["AWS_SECRET_ACCESS_KEY"] == {"name": "auscult-object-store", "key": "secret-key"}
    assert len(from_secret) == 4
    assert manifest["spec"]["predictors"][0]["graph"]["name"] == container["name"]


def test_cpu_serving_has_no_gpu_placement():
    pod = seldon_deployment("v1", "file:///x", ServingSpec(gpus=0))["spec"]["predictors"][0]["componentSpecs"][0][
        "spec"
    ]
    assert "nodeSelector" not in pod and "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]


def test_deploy_promotes_and_keeps_the_previous_version(store):
    registry = Registry(store)
    first = deploy(registry, b"onnx-1", {"metrics": {}}, {"input": {}})
    second = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert first.previous is None and second.previous == first.version
    assert registry.production()["version"] == second.version
    again = deploy(registry, b"onnx-2", {"metrics": {}}, {"input": {}})
    assert again.version == second.version and len(store.list(layout.production_pointers(MODEL_NAME))) == 2


def test_rendered_seldon_deployment_passes_the_crd_schema():
    from tests.k8s import validate

    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult"))
    validate(seldon_deployment("v0001-abc", "s3://bucket/auscult", ServingSpec(gpus=0)))


def test_model_card_records_data_code_and_interface():
    from auscult.stages.deploy import model_card

    card = model_card({"auroc": 0.9}, ["pass: x"], b"table bytes", "abc123")
    assert card["data_table_sha256"] == __import__("hashlib").sha256(b"table bytes").hexdigest()
    assert card["code_version"] == "abc123" and card["metrics"] == {"auroc": 0.9}
    assert card["input"]["sample_rate"] == 16000 and card["output"]["classes"] == ["negative", "positive"]
    assert card["front_end"] == {"f_max_hz": 8000.0, "channel_augmentation": False}
    capped = model_card({"front_end_f_max_hz": 3350.0, "channel_augmentation": 1.0}, [], b"t")
    assert capped["front_end"] == {"f_max_hz": 3350.0, "channel_augmentation": True}
