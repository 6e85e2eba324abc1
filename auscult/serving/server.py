"""Start and stop the Seldon Core microservice on one machine, as its own process group.

The microservice runs in the serving environment (seldon-core pins protobuf<4, which cannot share an
environment with kfp): :data:`SERVING_BIN_ENV` names its ``seldon-core-microservice``; by default the
project's ``.venv-serve`` is used, then whatever is on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from auscult.resources import available_cpus
from auscult.serving import contract

SERVING_BIN_ENV = "AUSCULT_SERVING_BIN"
REPO_SERVING_BIN = Path(__file__).resolve().parents[2] / ".venv-serve" / "bin" / "seldon-core-microservice"


def serving_bin() -> str:
    configured = os.environ.get(SERVING_BIN_ENV)
    if configured:
        return configured
    if REPO_SERVING_BIN.is_file():
        return str(REPO_SERVING_BIN)
    found = shutil.which("seldon-core-microservice")
    if not found:
        raise FileNotFoundError(
            f"seldon-core-microservice not found: run `make run` (it creates .venv-serve) or set {SERVING_BIN_ENV}"
        )
    return found


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
        """SIGTERM the whole group (gunicorn master, workers, gRPC and metrics servers), then wait."""
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


def start(
    store_uri: str,
    log_path: str | Path,
    model_version: str | None = None,
    http_port: int | None = None,
    workers: int | None = None,
    threads: int = 1,
    timeout_s: float = 120.0,
) -> Server:
    """Start the microservice (free ports unless ``http_port`` is given); return once it is healthy.

    By default one synchronous gunicorn worker per available CPU (at most four): the model is CPU-bound, so
    threads in a worker only queue on its GIL. On 2 cores at concurrency 8, 2 workers x 1 thread served 411 req/s,
    2 x 2 served 298 and 3 x 1 served 350.
    """
    cpus = available_cpus()
    workers = workers or min(4, cpus)
    http_port, grpc_port, metrics_port = http_port or free_port(), free_port(), free_port()
    env = {**os.environ, contract.ENV_STORE_URI: store_uri, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    # Seldon's metrics manager listens on a Unix socket under TMPDIR, whose path must stay under 108 bytes.
    if len(env.get("TMPDIR", "")) > 60 and os.path.isdir("/tmp"):
        env["TMPDIR"] = "/tmp"
    if model_version:
        env[contract.ENV_MODEL_VERSION] = model_version
    # Workers share the cores: each ONNX Runtime session gets its share instead of every one spinning on all.
    env.setdefault(contract.ENV_ORT_THREADS, str(max(1, cpus // workers)))
    command = [
        serving_bin(),
        contract.MODEL_CLASS,
        "--service-type",
        "MODEL",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "WARNING",
    ]
    log_path = Path(log_path)
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
