"""The real Seldon Core microservice, in its own environment, over HTTP on 127.0.0.1."""

import base64
import json
import urllib.request

import numpy as np
import pytest

from auscult import audio, layout
from auscult.model import export_onnx
from auscult.registry import Registry
from auscult.serving import client, server, telemetry
from auscult.store import FileStore
from tests.auscult.serving.conftest import wait_for


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    export_onnx(trained.model, folder / "model.onnx")
    store = FileStore(folder / "store")
    registry = Registry(store)
    version = registry.register((folder / "model.onnx").read_bytes(), {}, {})
    registry.promote(version, "test")
    running = server.start(store.root, folder / "server.log")
    yield running, store, version
    running.stop()


def raw_post(url, body: bytes, content_type="application/json"):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_predicts_an_encoded_file(served, cohort):
    running, _, version = served
    path = sorted(cohort.glob("*/*/cough-heavy.*"))[0]
    answer = client.predict_file(running.url, path.read_bytes(), {"participant": "p"})
    probabilities = answer["data"]["ndarray"][0]
    assert answer["data"]["names"] == ["negative", "positive"]
    assert len(probabilities) == 2 and sum(probabilities) == pytest.approx(1, abs=1e-5)
    assert answer["meta"]["tags"]["model_version"] == version
    assert answer["meta"]["tags"]["request_id"]


def test_predicts_a_waveform_and_records_feedback(served):
    running, store, _ = served
    wave = (0.2 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32)
    answer = client.predict_waveform(running.url, wave)
    assert client.send_feedback(running.url, answer, "positive") == {"strData": "recorded"}
    request_id = answer["meta"]["tags"]["request_id"]
    # Spooled before the answer, uploaded in the background.
    assert wait_for(lambda: telemetry.feedback_keys(store, request_id), timeout_s=30)
    (key,) = telemetry.feedback_keys(store, request_id)
    assert store.get_json(key)["truth"] == "positive"


@pytest.mark.parametrize(
    "body, words",
    [
        (b"not json", "JSON"),
        (json.dumps({"foo": 1}).encode(), "no audio"),
        (json.dumps({"binData": "%%%"}).encode(), "base64"),
        (json.dumps({"binData": base64.b64encode(b"garbage").decode()}).encode(), "audio file"),
        (json.dumps({"data": {"ndarray": [[1, 2], [3, 4]]}}).encode(), "one waveform"),
        (json.dumps({"data": {"ndarray": ["x"] * 3000}}).encode(), "numbers"),
    ],
)
def test_malformed_requests_get_400_with_a_message(served, body, words):
    running, _, _ = served
    status, text = raw_post(f"{running.url}/api/v1.0/predictions", body)
    assert status == 400, text
    assert words in json.loads(text)["status"]["info"]


def test_bad_feedback_gets_400(served):
    running, _, _ = served
    answer = client.predict_waveform(running.url, np.full(8000, 0.1, dtype=np.float32))
    for truth in ("maybe", 1, ["positive", "negative"]):
        feedback = {"response": {"meta": answer["meta"]}, "truth": {"data": {"ndarray": [truth]}}}
        status, text = raw_post(f"{running.url}/api/v1.0/feedback", json.dumps(feedback).encode())
        assert status == 400 and "truth" in text


def test_every_request_leaves_telemetry_that_survives_shutdown(trained, tmp_path, cohort):
    export_onnx(trained.model, tmp_path / "model.onnx")
    store = FileStore(tmp_path / "store")
    registry = Registry(store)
    registry.promote(registry.register((tmp_path / "model.onnx").read_bytes(), {}, {}), "test")
    files = sorted(p for p in cohort.glob("*/*/*.wav") if p.stat().st_size > 10_000)[:12]
    running = server.start(store.root, tmp_path / "server.log")
    ids = [client.predict_file(running.url, p.read_bytes())["meta"]["tags"]["request_id"] for p in files]
    assert running.stop() == 0
    records = [store.get_json(k) for k in store.list(layout.TELEMETRY_RECORDS)]
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    for record in records:
        assert store.exists(record["audio_key"])
        assert set(record["stats"]) == set(audio.STAT_NAMES)


def test_smoke_test_passes_against_the_real_server(served, capsys):
    from auscult.serving import smoke

    running, _, _ = served
    assert smoke.main([running.url]) == 0
    assert "smoke test passed" in capsys.readouterr().out


def test_smoke_test_fails_clearly_when_nothing_answers(capsys):
    from auscult.serving import smoke

    assert smoke.main([f"http://127.0.0.1:{server.free_port()}"]) == 1
    assert "smoke test failed" in capsys.readouterr().err


def test_a_server_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path):
    store = FileStore(tmp_path / "empty")
    with pytest.raises(server.ServerFailed, match="no model to serve") as raised:
        server.start(store.root, tmp_path / "server.log", timeout_s=60)
    assert "server.log" in str(raised.value)


@pytest.fixture(scope="module")
def large_wav(tmp_path_factory):
    """A 400 KB recording (12.5 s of 16-bit mono at 16 kHz): its base64 is longer than a command line may be."""
    import soundfile

    path = tmp_path_factory.mktemp("large") / "cough.wav"
    wave = 0.2 * np.random.default_rng(3).standard_normal(200_000)
    soundfile.write(path, wave, audio.SAMPLE_RATE, subtype="PCM_16")
    assert path.stat().st_size > 400_000
    return path


def test_auscult_predict_sends_a_large_file(served, large_wav, capsys):
    from pipelines.cli import main

    running, _, version = served
    assert main(["predict", str(large_wav), "--url", running.url, "--tag", "device=iphone"]) == 0
    probabilities, model = capsys.readouterr().out.splitlines()
    assert probabilities.startswith("negative ") and ", positive " in probabilities
    assert model.startswith(f"model {version}, request ")


def test_auscult_predict_says_what_went_wrong(served, tmp_path, capsys):
    from pipelines.cli import main

    running, _, _ = served
    (tmp_path / "notes.txt").write_text("not audio")
    assert main(["predict", str(tmp_path / "notes.txt"), "--url", running.url]) == 1
    assert "the server refused" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.wav"), "--url", running.url]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "notes.txt"), "--url", "http://127.0.0.1:9"]) == 1
    assert "nothing answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_the_readmes_curl_example_works_with_a_large_file(served, large_wav):
    """The README's two lines, run by bash as written, against the real server."""
    import re
    import subprocess
    from pathlib import Path

    running, _, version = served
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    lines = [line for line in readme.splitlines() if "request.json" in line and not line.startswith("#")]
    assert len(lines) == 2
    script = "\n".join(lines).replace("cough.wav", str(large_wav)).replace("localhost:9000", running.url)
    done = subprocess.run(["bash", "-ec", script], cwd=large_wav.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["meta"]["tags"]["model_version"] == version and re.fullmatch(
        r"[0-9a-f-]+", answer["meta"]["tags"]["request_id"]
    )
