#!/usr/bin/env bash
# Make headless Chromium usable for the report tests, and print the browser's and its driver's paths, one per
# line. Installed from Debian's packages (chromium, chromium-driver) where missing; installing needs root, or sudo.
set -euo pipefail

WHAT=browser NEEDS="chromium and chromium-driver" APT_OPTIONS=--no-install-recommends
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  install_packages chromium chromium-driver
fi
command -v chromium
command -v chromedriver
