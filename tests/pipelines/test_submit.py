"""``auscult submit`` against a local HTTP server that speaks the KFP REST API it uses."""

import json

import pytest
import yaml

from pipelines.compile import Images
from pipelines.submit import Submission, plan, submit
from tests.pipelines.kfp_api import FakeKfp, serve

ARGS = {"store_uri": "s3://auscult/prod", "sources": ["telemetry"], "epochs": 5}


@pytest.fixture
def kfp_api():
    api = FakeKfp()
    server, url = serve(api)
    yield api, url
    server.shutdown()


def uploaded_spec(recorded) -> dict:
    """The pipeline YAML inside a multipart upload body."""
    body = recorded.body.decode()
    start = body.index("# PIPELINE DEFINITION") if "# PIPELINE DEFINITION" in body else body.index("components:")
    text = body[start:].rsplit("\r\n--", 1)[0]
    return next(iter(yaml.safe_load_all(text)))


def test_first_submission_uploads_the_pipeline_and_starts_a_run(kfp_api):
    api, url = kfp_api
    created = submit(Submission(host=url, arguments=ARGS, version="v1"))
    assert len(api.calls("POST", "/apis/v2beta1/pipelines/upload")) == 1
    upload = api.calls("POST", "/apis/v2beta1/pipelines/upload")[0]
    assert upload.query["name"] == ["auscult-training"]
    assert "exec-train" in uploaded_spec(upload)["deploymentSpec"]["executors"]
    (run,) = api.calls("POST", "/apis/v2beta1/runs")
    body = json.loads(run.body)
    assert body["pipeline_version_reference"] == {
        "pipeline_id": created["pipeline_id"],
        "pipeline_version_id": created["version_id"],
    }
    assert body["runtime_config"]["parameters"] == ARGS
    assert body["experiment_id"] == created["experiment_id"]
    assert json.loads(api.calls("POST", "/apis/v2beta1/experiments")[0].body)["display_name"] == "auscult"


def test_later_submissions_add_versions_of_the_same_pipeline(kfp_api):
    api, url = kfp_api
    first = submit(Submission(host=url, arguments=ARGS, run=False, version="v1"))
    second = submit(Submission(host=url, arguments=ARGS, run=False, version="v2"))
    assert first["pipeline_id"] == second["pipeline_id"]
    (version,) = api.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version.query["name"] == ["v2"] and version.query["pipelineid"] == [first["pipeline_id"]]
    assert api.calls("POST", "/apis/v2beta1/runs") == []


def test_monitor_schedule_becomes_a_recurring_run(kfp_api):
    api, url = kfp_api
    created = submit(Submission(host=url, arguments=ARGS, run=False, monitor_schedule="0 3 * * *", version="v1"))
    (recurring,) = api.calls("POST", "/apis/v2beta1/recurringruns")
    body = json.loads(recurring.body)
    assert body["trigger"]["cron_schedule"]["cron"] == "0 3 * * *"
    assert body["runtime_config"]["parameters"] == {"store_uri": "s3://auscult/prod"}
    assert body["max_concurrency"] == "1" or body["max_concurrency"] == 1
    assert created["recurring_run_id"]
    names = [r.query["name"][0] for r in api.calls("POST", "/apis/v2beta1/pipelines/upload")]
    assert names == ["auscult-training", "auscult-monitor"]


def test_the_uploaded_yaml_carries_gpu_placement_and_secrets(kfp_api):
    api, url = kfp_api
    submit(
        Submission(host=url, arguments=ARGS, run=False, images=Images(runtime="registry.example/rt:3"), version="v1")
    )
    body = api.calls("POST", "/apis/v2beta1/pipelines/upload")[0].body.decode()
    assert "registry.example/rt:3" in body and "nvidia.com/gpu" in body and "auscult-object-store" in body


def test_plan_says_what_would_be_sent_without_sending_it():
    steps = plan(Submission(host="http://kfp", arguments=ARGS, monitor_schedule="*/30 * * * *", version="v9"))
    assert "version v9 of 'auscult-training'" in steps[0]
    assert "experiment 'auscult'" in steps[1] and "*/30 * * * *" in steps[2]


def test_cli_submit_talks_to_the_api(kfp_api, capsys):
    from pipelines.cli import main

    api, url = kfp_api
    assert main(["submit", "--host", url, "--upload-only", "--image", "reg/rt:1", "--store-secret", "creds"]) == 0
    assert "pipeline_id:" in capsys.readouterr().out
    body = api.calls("POST", "/apis/v2beta1/pipelines/upload")[0].body.decode()
    assert "reg/rt:1" in body and "creds" in body
    assert api.calls("POST", "/apis/v2beta1/runs") == []


def test_cli_submit_dry_run_sends_nothing(kfp_api, capsys):
    from pipelines.cli import main

    api, url = kfp_api
    assert main(["submit", "--host", url, "--store", "s3://a/b", "--dry-run"]) == 0
    assert "would upload" in capsys.readouterr().out
    assert api.requests == []
