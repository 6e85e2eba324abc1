#!/usr/bin/env bash
# Make headless Chromium usable for the report tests, and print the browser's and its driver's paths, one per
# line. Installed from Debian's packages (chromium, chromium-driver) where missing; installing needs root, or sudo.
set -euo pipefail

log() { echo "browser: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "'$*' needs root: run it as root, or install chromium and chromium-driver yourself"; exit 1; fi
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing chromium and chromium-driver from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2 \
    || { as_root apt-get update -qq >&2 \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2; }
fi
command -v chromium
command -v chromedriver
