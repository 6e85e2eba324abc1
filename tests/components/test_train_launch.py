"""The train task's launch path as the pipeline runs it on a cluster: the component renders the job, applies it to
the Kubernetes API (the local fake), waits, and takes the model its first worker wrote. The fake stands in for the
operator: when the job is applied it runs the worker command from the applied manifest, as a one-process job."""

from functools import partial

import pytest
from kfp.dsl import Dataset, Metrics, Model
from kubernetes import client

import components
from auscult import layout, training_job
from auscult.cluster import Cluster
from auscult.lineage import RunRef
from auscult.stages import train_worker
from auscult.stages.prep import prep
from auscult.stages.split import split
from auscult.stages.train import TrainResult
from auscult.store import FileStore
from tests.auscult.kube_api import FakeKube, job_status, serve

KINDS = {"trainjob": "TrainJob", "pytorchjob": "PyTorchJob"}


def worker_arguments(manifest: dict) -> list[str]:
    """What the operator would run in each pod: the arguments after the worker module."""
    if manifest["kind"] == "TrainJob":
        command = manifest["spec"]["trainer"]["command"] + manifest["spec"]["trainer"].get("args", [])
    else:
        master = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
        command = master["command"] + master.get("args", [])
    return command[command.index(train_worker.MODULE) + 1 :]


@pytest.fixture(scope="module")
def prepared_folder(labelled, tmp_path_factory):
    folder = tmp_path_factory.mktemp("launch") / "prepared"
    prep(split(labelled), folder, progress=lambda _: None)
    return folder


@pytest.fixture
def launched(prepared_folder, tmp_path, monkeypatch):
    api = FakeKube()
    server, url = serve(api)
    cluster = Cluster(client.ApiClient(client.Configuration(host=url)), "screening")
    monkeypatch.setattr(Cluster, "from_environment", classmethod(lambda cls, namespace="": cluster))
    monkeypatch.setattr(training_job, "run_job", partial(training_job.run_job, poll_s=0.01))
    (tmp_path / "prepared").symlink_to(prepared_folder)
    yield api, tmp_path
    server.shutdown()


def run_train(tmp_path, operator: str):
    store = FileStore(tmp_path / "store")
    launch = {
        "operator": operator,
        "service_account": "auscult-trainer",
        "store_secret": "auscult-object-store",
        "gpus_per_worker": 0,
        "timeout_s": 60,
    }
    components.train.python_func(
        prepared=Dataset(uri=str(tmp_path / "prepared")),
        epochs=1,
        seed=0,
        guard_channel=True,
        workers=2,
        launch=launch,
        training_image="registry.example/auscult-training:1",
        store_uri=store.root,
        run_id="run-7",
        run_name="auscult-training-7",
        model=Model(uri=str(tmp_path / "model")),
        metrics=Metrics(uri=str(tmp_path / "metrics")),
    )
    return store


@pytest.mark.parametrize("operator", KINDS)
def test_the_train_task_launches_its_workers_as_a_job_and_takes_their_model(launched, operator):
    api, tmp_path = launched
    kind = KINDS[operator]
    api.job_statuses = [job_status(kind, "Running"), job_status(kind, "Succeeded")]

    def operator_runs_the_workers(manifest: dict) -> None:
        train_worker.main(worker_arguments(manifest))

    api.on_apply = operator_runs_the_workers
    store = run_train(tmp_path, operator)
    (patch,) = api.training_requests("PATCH")
    manifest = patch["body"]
    assert manifest["kind"] == kind
    assert "registry.example/auscult-training:1" in str(manifest)
    assert "nvidia.com/gpu" not in str(manifest), "CPU workers were asked for"
    result = TrainResult.load(tmp_path / "model")
    assert len(result.history) == 1
    run_id = RunRef("run-7", "auscult-training-7").run_id
    assert store.list(layout.training_input(run_id)) and store.list(layout.training_output(run_id))


@pytest.mark.parametrize("operator", KINDS)
def test_a_failed_job_fails_the_train_task_with_its_reason(launched, operator):
    api, tmp_path = launched
    kind = KINDS[operator]
    api.job_statuses = [job_status(kind, "Failed", reason="OOMKilled", message="worker 1 ran out of memory")]
    with pytest.raises(training_job.TrainingJobError, match="OOMKilled: worker 1 ran out of memory"):
        run_train(tmp_path, operator)
    assert not (tmp_path / "model").exists()
