"""Start and stop the model server (:mod:`auscult.serving.launcher`) on one machine, as its own process group.

The server runs in the serving environment (seldon-core pins protobuf<4, which cannot share an environment with
kfp): :data:`SERVING_PYTHON_ENV` names its Python; by default the project's ``.venv-serve``, then this Python
when it has seldon-core.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from auscult.resources import available_cpus
from auscult.serving import contract

SERVING_PYTHON_ENV = "AUSCULT_SERVING_PYTHON"
REPO_SERVING_PYTHON = Path(__file__).resolve().parents[2] / ".venv-serve" / "bin" / "python"


def serving_python() -> str:
    configured = os.environ.get(SERVING_PYTHON_ENV)
    if configured:
        return configured
    if REPO_SERVING_PYTHON.is_file():
        return str(REPO_SERVING_PYTHON)
    if importlib.util.find_spec("seldon_core") is not None:
        return sys.executable
    raise FileNotFoundError(
        f"no Python with seldon-core: run `make run` (it creates .venv-serve) or set {SERVING_PYTHON_ENV}"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerFailed(RuntimeError):
    """The model server could not start; the message carries its own last word."""


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM the whole group (the launcher, its workers, seldon-core's metrics manager), then wait."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_spool(log_path: Path, store_uri: str) -> Path:
    """Beside the log, one spool per store: what a server spooled is only ever uploaded to its own store."""
    return log_path.parent / "telemetry-spool" / hashlib.sha256(store_uri.encode()).hexdigest()[:12]


def start(
    store_uri: str,
    log_path: str | Path,
    model_version: str | None = None,
    http_port: int | None = None,
    workers: int | None = None,
    threads: int = 4,
    spool: str | Path | None = None,
    timeout_s: float = 120.0,
) -> Server:
    """Start the server on 127.0.0.1 (a free port unless ``http_port`` is given); return once it is healthy.

    The keys it needs (:data:`~auscult.serving.contract.ENV_FEEDBACK_KEY` and the pseudonymisation key) come from
    this process's environment. Telemetry is spooled under ``spool`` (default: :func:`default_spool`) before a
    request is answered. By default one worker process per available CPU (at most four), each with ONNX Runtime
    on its share of the cores: the model is CPU-bound, so more threads in a worker only queue on its GIL.
    """
    cpus = available_cpus()
    workers = workers or min(4, cpus)
    http_port = http_port or free_port()
    log_path = Path(log_path)
    env = {
        **os.environ,
        contract.ENV_STORE_URI: store_uri,
        contract.ENV_TELEMETRY_SPOOL: str(Path(spool or default_spool(log_path, store_uri)).resolve()),
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
    }
    # Seldon's metrics manager listens on a Unix socket under TMPDIR, whose path must stay under 108 bytes.
    if len(env.get("TMPDIR", "")) > 60 and os.path.isdir("/tmp"):
        env["TMPDIR"] = "/tmp"
    if model_version:
        env[contract.ENV_MODEL_VERSION] = model_version
    # Workers share the cores: each ONNX Runtime session gets its share instead of every one spinning on all.
    env.setdefault(contract.ENV_ORT_THREADS, str(max(1, cpus // workers)))
    command = [
        serving_python(),
        "-m",
        contract.SERVER_MODULE,
        "--host",
        "127.0.0.1",
        "--port",
        str(http_port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{http_port}", log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerFailed(f"the model server exited: {_first_error(log_path)} (log: {log_path})")
            try:
                with urllib.request.urlopen(f"{server.url}/api/v1.0/health/status", timeout=2) as response:
                    if response.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise ServerFailed(f"the model server did not become healthy within {timeout_s:.0f} s (log: {log_path})")
    except BaseException:  # Ctrl-C while it starts too: never leave a server holding the port
        server.stop()
        raise


def _first_error(log_path: Path) -> str:
    """What went wrong first, in the server's log: the first exception's message (later ones follow from it,
    such as gunicorn's own shutdown errors), else its last line."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
    return (errors or lines[-1:] or ["no output"])[0]
