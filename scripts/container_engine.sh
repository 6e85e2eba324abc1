#!/usr/bin/env bash
# Make a container engine usable for `make images` and the container tests, and print which: "podman" or
# "docker". A running Docker engine is used as it is; otherwise Podman, installed from Debian's packages
# where it is missing (this needs root, or sudo).
#
# CI-host adaptation, applied only where it is needed: some sandboxes (the development and CI machines
# here) withhold CAP_SYS_RESOURCE, so no OCI runtime can apply a container's rlimits ("setrlimit
# RLIMIT_NPROC: Operation not permitted") and crun refuses their cgroup layout. There, runc is registered
# behind a wrapper that deletes process.rlimits from the bundle's config.json, and made Podman's runtime.
# Containers then inherit the host's limits. Nothing of this reaches an image or a cluster.
set -euo pipefail

log() { echo "container engine: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  log "'$*' needs root: run it as root, or install podman yourself"; exit 1; fi; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo docker
  exit 0
fi

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing podman, buildah, runc and debootstrap from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >&2 \
    || { as_root apt-get update -qq >&2 && as_root env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq podman buildah runc debootstrap >&2; }
fi

# CAP_SYS_RESOURCE is bit 24 of the bounding set.
bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if (( (16#$bounding >> 24 & 1) == 0 )); then
  wrapper=/usr/local/bin/runc-without-rlimits
  conf=/etc/containers/containers.conf
  if ! grep -q "runc-without-rlimits" "$conf" 2>/dev/null; then
    log "this host withholds CAP_SYS_RESOURCE: registering runc without rlimits ($wrapper, $conf)"
    as_root tee "$wrapper" >/dev/null <<'WRAPPER'
#!/usr/bin/env python3
"""runc, minus the rlimits this host forbids setting (scripts/container_engine.sh installed it)."""
import json
import os
import sys

args = sys.argv[1:]
bundle = None
for index, arg in enumerate(args):
    if arg in ("--bundle", "-b") and index + 1 < len(args):
        bundle = args[index + 1]
    elif arg.startswith("--bundle="):
        bundle = arg.partition("=")[2]
if bundle and ("create" in args or "run" in args):
    config = os.path.join(bundle, "config.json")
    with open(config) as handle:
        spec = json.load(handle)
    if spec.get("process", {}).pop("rlimits", None) is not None:
        with open(config, "w") as handle:
            json.dump(spec, handle)
os.execv("/usr/bin/runc", ["runc", *args])
WRAPPER
    as_root chmod 0755 "$wrapper"
    as_root mkdir -p /etc/containers
    as_root tee -a "$conf" >/dev/null <<CONF

# scripts/container_engine.sh: this host withholds CAP_SYS_RESOURCE
[engine]
runtime = "runc-without-rlimits"

[engine.runtimes]
runc-without-rlimits = ["$wrapper"]
CONF
  fi
fi
echo podman
