"""The container engine the image tests use: the images built by scripts/images.py, and the Docker API that
KFP's DockerRunner talks to (Podman serves it on a socket of its own)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "localhost/auscult-test"


def engine_environment(scratch: Path) -> dict[str, str]:
    """The environment for the engine's commands. Its TMPDIR is one of the tests' own: Podman keeps temporary
    files there, and a test that ran a local workspace may have left TMPDIR naming a folder since deleted."""
    return {**os.environ, "TMPDIR": str(scratch)}


@dataclass(frozen=True)
class Built:
    engine: str  # podman or docker
    images: dict[str, dict]  # runtime/serving -> ref, id, build (digest of the build's inputs), seconds
    scratch: Path

    def ref(self, image: str) -> str:
        return self.images[image]["ref"]

    def environment(self) -> dict[str, str]:
        return engine_environment(self.scratch)

    def run(self, *arguments: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.engine, *arguments], capture_output=True, text=True, env=self.environment(), **kwargs
        )


class ImageBuild:
    """The runtime and serving images (CPU variants on a base made from Debian's packages), built as `make images`
    builds them, in the background from the moment the tests that need them are collected: a cold build takes
    minutes, which the other tests' run hides. Unchanged inputs are not rebuilt. They are named under a registry
    of their own, so that they never replace what `make images` built."""

    def __init__(self, folder: Path):
        self.report, self.log, self.scratch = folder / "images.json", folder / "images.log", folder / "scratch"
        self.scratch.mkdir()
        command = [sys.executable, str(ROOT / "scripts" / "images.py"), "build", "--base-image", "debootstrap"]
        command += ["--registry", REGISTRY, "--variant", "cpu", "--only", "runtime", "serving"]
        with open(self.log, "w") as handle:
            self.process = subprocess.Popen(
                [*command, "--json", str(self.report)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=engine_environment(self.scratch),
                start_new_session=True,  # stop() ends the engine's build with it
            )

    def wait(self) -> Built:
        if self.process.wait() != 0:
            tail = "\n".join(self.log.read_text().splitlines()[-40:])
            raise RuntimeError(f"building the images failed (exit {self.process.returncode}); the log's end:\n{tail}")
        found = json.loads(self.report.read_text())
        return Built(found["engine"], {entry["image"]: entry for entry in found["images"]}, self.scratch)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


class DockerApi:
    """Podman's Docker-compatible API on a unix socket (`podman system service`), or Docker's own."""

    def __init__(self, built: Built, folder: Path):
        self.process: subprocess.Popen | None = None
        if built.engine == "docker":
            self.host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            return
        socket = folder / "podman.sock"
        self.host = f"unix://{socket}"
        self.process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.host],
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "podman-service.log", "w"),
            env=built.environment(),
        )
        deadline = time.monotonic() + 30
        while not socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not start: see {folder / 'podman-service.log'}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
