"""The launcher's settings come from the Seldon operator's environment and ours; its metrics port works."""

from __future__ import annotations

import pytest

from auscult.serving import contract, server
from auscult.serving.launcher import Settings, settings_from
from auscult.store import FileStore
from tests.auscult.serving.conftest import body, call, promote, waveform_request


def test_local_defaults_are_closed(monkeypatch):
    for name in (contract.ENV_HOST, contract.ENV_HTTP_PORT, contract.ENV_METRICS_PORT, contract.ENV_CORS_ORIGINS):
        monkeypatch.delenv(name, raising=False)
    settings = settings_from([])
    assert settings.host == "127.0.0.1" and settings.port == contract.HTTP_PORT
    assert settings.metrics_port is None and settings.cors_origins == ()


def test_the_operators_environment_sets_the_ports(monkeypatch):
    monkeypatch.setenv(contract.ENV_HTTP_PORT, "9100")
    monkeypatch.setenv(contract.ENV_METRICS_PORT, "6100")
    monkeypatch.setenv(contract.ENV_HOST, "0.0.0.0")
    monkeypatch.setenv(contract.ENV_CORS_ORIGINS, "https://app.example, https://staff.example")
    monkeypatch.setenv(contract.ENV_WORKERS, "3")
    assert settings_from([]) == Settings(
        host="0.0.0.0",
        port=9100,
        metrics_port=6100,
        workers=3,
        cors_origins=("https://app.example", "https://staff.example"),
    )


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv(contract.ENV_HTTP_PORT, "9100")
    assert settings_from(["--port", "9200", "--threads", "4"]).port == 9200


@pytest.mark.parametrize("argv", [["--port", "x"], ["--workers"]])
def test_bad_flags_are_refused_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        settings_from(argv)
    assert stopped.value.code == 2 and "usage" in capsys.readouterr().err


def test_metrics_and_configured_origins_are_served(onnx_model, tmp_path, monkeypatch):
    store = FileStore(tmp_path / "store")
    promote(store, onnx_model)
    metrics_port = server.free_port()
    monkeypatch.setenv(contract.ENV_METRICS_PORT, str(metrics_port))
    monkeypatch.setenv(contract.ENV_CORS_ORIGINS, "https://app.example")
    with server.start(store.root, tmp_path / "server.log", workers=1) as running:
        assert call(running.url, "POST", "/api/v1.0/predictions", body(waveform_request()))[0] == 200
        status, _, _ = call(f"http://127.0.0.1:{metrics_port}", "GET", "/metrics")
        assert status == 200
        _, allowed, _ = call(running.url, "GET", "/health/ping", headers={"Origin": "https://app.example"})
        _, other, _ = call(running.url, "GET", "/health/ping", headers={"Origin": "https://evil.example"})
    assert allowed.get("Access-Control-Allow-Origin") == "https://app.example"
    assert "Access-Control-Allow-Origin" not in other
