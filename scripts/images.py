"""Build and push auscult's container images with Podman or Docker, with no container registry in reach.

    python scripts/images.py build [--base-image debootstrap] [--variant cpu] [--only runtime serving]
    python scripts/images.py push --registry registry.example.com/auscult [--variant cpu]

The three images (``contract.image_ref``): runtime (every pipeline task but training), training (the train
task) and serving (the predictor). Python dependencies come from a wheel folder prepared here, on the host,
from pyproject.toml's pins (``build/wheels/<set>``, its ``requirements.txt`` naming what to install and the
index options that resolved it), so a build on a Debian base needs no network (on NVIDIA's Ubuntu base,
images/python.sh fetches Python 3.11 from the deadsnakes PPA). ``--base-image debootstrap`` makes the base
from Debian's packages (bookworm, Python 3.11) for machines that reach package registries only; without it,
the Dockerfiles' public bases. A build whose inputs (Dockerfile, base image, wheel listing, copied files,
build arguments) hash to what an existing image's ``io.auscult.build`` label says is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auscult.serving import contract  # noqa: E402
from scripts.requirements import requirements  # noqa: E402

WHEELS = ROOT / "build" / "wheels"
DEBOOTSTRAP_PACKAGES = ("python3", "python3-venv", "passwd")
# The tag names the recipe: a changed package list makes a new base.
DEBOOTSTRAP_BASE = (
    "localhost/auscult-base:bookworm-" + hashlib.sha256(",".join(DEBOOTSTRAP_PACKAGES).encode()).hexdigest()[:8]
)
# What an image copies from the build context besides its Dockerfile (and the wheel folder).
CONTEXT = (
    "images/python.sh",
    "scripts/strip_torchaudio_extension.py",
    "pyproject.toml",
    "README.md",
    "auscult",
    "components",
    "pipelines",
)
CUDA_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04"  # serving.Dockerfile's default BASE_IMAGE
CPU_BASE = "python:3.11.7-slim-bookworm"  # runtime.Dockerfile's default BASE_IMAGE
# Where the host's `pip wheel` finds the CUDA build of torch for the training image. The CPU sets take torch
# as pip resolves it (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu where PyPI's is the CUDA
# build); a CPU set that resolved to CUDA wheels is refused.
WHEEL_INDEX_OPTIONS = {"pipeline-cuda": ["--extra-index-url", "https://download.pytorch.org/whl/cu128"]}


@dataclass(frozen=True)
class Build:
    """One image: which Dockerfile, which wheel set, and which base (None: the Dockerfile's default)."""

    image: str
    dockerfile: str
    wheels: str
    base: str | None
    variant: str = ""

    def ref(self, registry: str, tag: str) -> str:
        return contract.image_ref(self.image, registry=registry, tag=tag, variant=self.variant)


def builds(variant: str, base: str | None) -> list[Build]:
    """The images of a variant: "gpu" (the public CUDA bases) or "cpu" (what builds anywhere)."""
    if variant == "gpu":
        return [
            Build("runtime", "runtime.Dockerfile", "pipeline-cpu", base),
            Build("training", "runtime.Dockerfile", "pipeline-cuda", CUDA_BASE),
            Build("serving", "serving.Dockerfile", "serving-gpu", CUDA_BASE),
        ]
    return [
        Build("runtime", "runtime.Dockerfile", "pipeline-cpu", base),
        Build("training", "runtime.Dockerfile", "pipeline-cpu", base, variant="cpu"),
        Build("serving", "serving.Dockerfile", "serving-cpu", base or CPU_BASE, variant="cpu"),
    ]


def wheel_set(name: str) -> list[str]:
    """What a wheel set installs: the core plus an extra. Installing the project needs setuptools among the
    wheels: the serving extra pins it, and torch requires it."""
    extra, _, flavour = name.partition("-")
    pinned = requirements([extra])
    if flavour == "gpu":
        pinned = [p.replace("onnxruntime==", "onnxruntime-gpu==", 1) for p in pinned]
    return sorted(set(pinned))


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def engine() -> str:
    """podman or docker: a running engine, Podman installed where none is (scripts/container_engine.sh)."""
    found = run(["bash", str(ROOT / "scripts" / "container_engine.sh")], stdout=subprocess.PIPE, text=True)
    return found.stdout.strip()


def wheel_listing(name: str) -> str:
    """The requirements.txt of a wheel set: what the image installs from it, and the index options that
    resolved it (a comment, so that a changed index changes the build's digest and its dependency layer)."""
    options = " ".join(WHEEL_INDEX_OPTIONS.get(name, [])) or "none"
    return f"# pip wheel index options: {options}\n" + "\n".join(wheel_set(name)) + "\n"


def prepare_wheels(name: str) -> Path:
    """build/wheels/<name>: every wheel the set needs, resolved here from the pins (kept while they hold)."""
    folder = WHEELS / name
    pinned, wanted = wheel_set(name), wheel_listing(name)
    listing = folder / "requirements.txt"
    if listing.exists() and listing.read_text() == wanted:
        return folder
    log(f"preparing the wheel folder {folder.relative_to(ROOT)} ({len(pinned)} pins)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "wheel", "-qq", "--wheel-dir", str(folder)]
    run(command + WHEEL_INDEX_OPTIONS.get(name, []) + pinned)
    cuda = sorted(p.name for p in folder.glob("nvidia_*.whl"))
    if cuda and not name.endswith(("-cuda", "-gpu")):
        raise SystemExit(
            f"images: the CPU wheel set {name} resolved torch's CUDA build ({len(cuda)} nvidia wheels); set "
            "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and run again"
        )
    listing.write_text(wanted)
    return folder


def image_label(tool: str, ref: str) -> str | None:
    """The io.auscult.build label of a local image, or None where there is no such image."""
    found = subprocess.run(
        [tool, "image", "inspect", "--format", '{{ index .Config.Labels "io.auscult.build" }}', ref],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def image_id(tool: str, ref: str) -> str:
    return run([tool, "image", "inspect", "--format", "{{ .Id }}", ref], capture_output=True, text=True).stdout.strip()


def debootstrap_base(tool: str) -> str:
    """A Python 3.11 base from Debian bookworm's packages, imported as DEBOOTSTRAP_BASE (built once per recipe;
    debootstrap needs root)."""
    if image_label(tool, DEBOOTSTRAP_BASE) is not None:
        return DEBOOTSTRAP_BASE
    log(f"making the base {DEBOOTSTRAP_BASE} with debootstrap (Debian bookworm; a few minutes)")
    started = time.monotonic()
    root = [] if os.geteuid() == 0 else ["sudo"]
    # Outside the build context: a scratch folder left by an interrupted run must not join later builds.
    with tempfile.TemporaryDirectory(prefix="auscult-debootstrap-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        packages = ",".join(DEBOOTSTRAP_PACKAGES)
        run(
            [*root, "debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs)],
            stdout=subprocess.DEVNULL,
        )
        run([*root, "rm", "-rf", str(rootfs / "var" / "cache" / "apt" / "archives")])
        archive = subprocess.Popen([*root, "tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        with archive.stdout:
            run(
                [tool, "import", "--change", 'CMD ["/bin/bash"]', "-", DEBOOTSTRAP_BASE],
                stdin=archive.stdout,
                stdout=subprocess.DEVNULL,
            )
        if archive.wait() != 0:
            raise SystemExit(f"images: archiving the debootstrap root failed (tar exit {archive.returncode})")
        run([*root, "rm", "-rf", str(rootfs)])
    log(f"base ready in {time.monotonic() - started:.0f} s")
    return DEBOOTSTRAP_BASE


def code_version() -> str:
    """The commit, marked -modified where the checkout differs from it, as the lineage record names code."""
    from auscult.lineage import code_version as lineage_code_version

    return lineage_code_version()["commit"] or ""


def inputs_digest(build: Build, base_id: str, arguments: dict[str, str]) -> str:
    """SHA-256 over everything a build reads: Dockerfile, base image id, wheel set, copied files, arguments."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"build": build.__dict__, "base": base_id, "arguments": arguments}).encode())
    digest.update((ROOT / "images" / build.dockerfile).read_bytes())
    digest.update(wheel_listing(build.wheels).encode())
    for entry in CONTEXT:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def build_image(tool: str, build: Build, registry: str, tag: str) -> dict[str, str]:
    """Build one image unless an image with the same inputs is there; what was built, and how long it took."""
    ref = build.ref(registry, tag)
    base_image = build.base if build.base else None
    base_id = image_id(tool, base_image) if base_image and image_label(tool, base_image) is not None else ""
    arguments = {
        "WHEELS": str((WHEELS / build.wheels).relative_to(ROOT)),
        "AUSCULT_CODE_VERSION": code_version(),
        "AUSCULT_IMAGE_REF": ref,
    }
    if base_image:
        arguments["BASE_IMAGE"] = base_image
    digest = inputs_digest(build, base_id, arguments)
    if image_label(tool, ref) == digest:
        log(f"{ref} is up to date (inputs {digest[:12]})")
        return {"image": build.image, "ref": ref, "id": image_id(tool, ref), "build": digest, "seconds": "0"}
    prepare_wheels(build.wheels)
    log(f"building {ref}" + (f" on {base_image}" if base_image else ""))
    started = time.monotonic()
    command = [tool, "build", "--file", str(ROOT / "images" / build.dockerfile), "--tag", ref]
    identity = {"AUSCULT_CODE_VERSION": arguments["AUSCULT_CODE_VERSION"], "AUSCULT_IMAGE_REF": ref,
                "AUSCULT_IMAGE_BUILD": digest}  # fmt: skip
    if tool == "podman":
        command.append("--layers")
        if build.base != CUDA_BASE:  # only NVIDIA's Ubuntu base needs the network (for Python 3.11)
            command.append("--network=none")
        # Buildah's layer cache ignores changed build arguments in ARG, LABEL and ENV steps: an image built after
        # another from the same Dockerfile would carry the other's identity. Set it on the final image instead.
        command += ["--label", f"io.auscult.build={digest}"]
        command += [arg for name, value in identity.items() for arg in ("--env", f"{name}={value}")]
    for name, value in {**arguments, **identity}.items():
        command += ["--build-arg", f"{name}={value}"]
    run(command + [str(ROOT)], stdout=sys.stderr)
    seconds = time.monotonic() - started
    log(f"built {ref} in {seconds:.0f} s")
    return {"image": build.image, "ref": ref, "id": image_id(tool, ref), "build": digest, "seconds": f"{seconds:.0f}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/images.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the images (skipping those whose inputs are unchanged)")
    push = commands.add_parser("push", help="push the images of a variant (built first where they are not)")
    for command in (build, push):
        command.add_argument(
            "--registry", default="", help=f"default: ${contract.ENV_IMAGE_REGISTRY} or {contract.IMAGE_REGISTRY}"
        )
        command.add_argument("--tag", default="", help=f"default: ${contract.ENV_IMAGE_TAG} or the package version")
    build.add_argument(
        "--base-image",
        default="",
        help="the base of the CPU images: 'debootstrap' (made here from Debian's packages), an image name, or "
        "empty for the Dockerfiles' public bases",
    )
    for command in (build, push):
        command.add_argument(
            "--variant",
            choices=("cpu", "gpu"),
            default="gpu",
            help="gpu: training and serving on the CUDA base (public registries needed); cpu: CPU variants "
            "(tags end in -cpu) that build anywhere",
        )
        command.add_argument("--only", nargs="+", choices=contract.IMAGES, help="these images only")
    build.add_argument("--json", type=Path, help="also write what was built (refs, ids, build digests) here")
    args = parser.parse_args(argv)

    tool = engine()
    (ROOT / "build").mkdir(exist_ok=True)
    if args.command == "push":
        for b in builds(args.variant, None):
            if not args.only or b.image in args.only:
                ref = b.ref(args.registry, args.tag)
                if image_label(tool, ref) is None:
                    raise SystemExit(f"images: {ref} is not built here: run `make images` with the same settings")
                run([tool, "push", ref])
        return 0
    base = debootstrap_base(tool) if args.base_image == "debootstrap" else (args.base_image or None)
    built = [
        build_image(tool, b, args.registry, args.tag)
        for b in builds(args.variant, base)
        if not args.only or b.image in args.only
    ]
    # What rebuilt images left behind (ours only: they carry the label).
    run([tool, "image", "prune", "--force", "--filter", "label=io.auscult.build"], stdout=subprocess.DEVNULL)
    for entry in built:
        print(f"{entry['ref']}  {entry['id'][:19]}  build {entry['build'][:12]}")
    if args.json:
        args.json.write_text(json.dumps({"engine": tool, "images": built}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
