#!/usr/bin/env bash
# Make a container engine usable for `make images` and the container tests, and print which: "podman" or
# "docker". A running Docker engine is used as it is; otherwise Podman, installed from Debian's packages
# where it is missing (with debootstrap, which makes local base images). Installing needs root, or sudo.
#
# CI-host adaptation, applied only where it is needed: some sandboxes (the development and CI machines
# here) withhold CAP_SYS_RESOURCE, so no OCI runtime can apply a container's rlimits ("setrlimit
# RLIMIT_NPROC: Operation not permitted") and crun refuses their cgroup layout. There, runc is registered
# behind a wrapper that deletes process.rlimits from what it is given, and made Podman's runtime (a drop-in,
# /etc/containers/containers.conf.d/). Containers then inherit the host's limits. Nothing of this reaches an
# image or a cluster.
set -euo pipefail

WHAT="container engine" NEEDS="podman, runc and debootstrap"
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

docker_runs=false
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then docker_runs=true; fi

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ! $docker_runs; then
  command -v podman >/dev/null || missing+=(podman buildah)
  command -v runc >/dev/null || missing+=(runc)
fi
if [ ${#missing[@]} -gt 0 ]; then install_packages "${missing[@]}"; fi
if $docker_runs; then
  echo docker
  exit 0
fi

# CAP_SYS_RESOURCE is bit 24 of the bounding set.
bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if (( (16#$bounding >> 24 & 1) == 0 )); then
  wrapper=/usr/local/bin/runc-without-rlimits
  dropin=/etc/containers/containers.conf.d/50-runc-without-rlimits.conf
  if [ ! -f "$dropin" ] || [ ! -x "$wrapper" ]; then
    log "this host withholds CAP_SYS_RESOURCE: registering runc without rlimits ($wrapper, $dropin)"
    runc=$(command -v runc)
    as_root tee "$wrapper" >/dev/null <<WRAPPER
#!/usr/bin/python3
"""runc, minus the rlimits this host forbids setting (installed by auscult's scripts/container_engine.sh)."""
import json
import os
import sys

RUNC = "$runc"
args = sys.argv[1:]


def value(flags):
    for index, arg in enumerate(args):
        if arg in flags and index + 1 < len(args):
            return args[index + 1]
        for flag in flags:
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.partition("=")[2]
    return None


def strip(path, nested):
    with open(path) as handle:
        spec = json.load(handle)
    process = spec.get("process", {}) if nested else spec
    if process.pop("rlimits", None) is not None:
        with open(path, "w") as handle:
            json.dump(spec, handle)


if "create" in args or "run" in args:
    strip(os.path.join(value(("--bundle", "-b")) or os.getcwd(), "config.json"), nested=True)
if "exec" in args and value(("--process", "-p")):
    strip(value(("--process", "-p")), nested=False)
os.execv(RUNC, ["runc", *args])
WRAPPER
    as_root chmod 0755 "$wrapper"
    as_root mkdir -p "$(dirname "$dropin")"
    as_root tee "$dropin" >/dev/null <<CONF
# auscult's scripts/container_engine.sh: this host withholds CAP_SYS_RESOURCE, so runc runs without rlimits.
[engine]
runtime = "runc-without-rlimits"

[engine.runtimes]
runc-without-rlimits = ["$wrapper"]
CONF
  fi
fi
echo podman
