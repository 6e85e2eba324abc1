#!/bin/sh
# Python 3.11 in a virtual environment at /opt/venv, installed the way the base image needs, and the
# non-root user (uid 10001) every auscult container runs as. Bases it knows:
#   python:3.11-*-bookworm (public), a debootstrap of Debian bookworm (local builds): Python 3.11 is there;
#   nvidia/cuda:*-ubuntu22.04 (public GPU builds): Ubuntu ships 3.10, so 3.11 comes from the deadsnakes PPA.
set -eu
if ! command -v python3.11 >/dev/null; then
  . /etc/os-release
  if [ "${ID:-}" != ubuntu ]; then
    echo "images/python.sh: no python3.11 in this base ($PRETTY_NAME) and no known way to install it" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends software-properties-common
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get install -y --no-install-recommends python3.11 python3.11-venv
  rm -rf /var/lib/apt/lists/*
fi
python3.11 -m venv /opt/venv
if command -v useradd >/dev/null; then
  useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin auscult
else
  echo "auscult:x:10001:10001::/home/auscult:/usr/sbin/nologin" >>/etc/passwd
  echo "auscult:x:10001:" >>/etc/group
  install -d -o 10001 -g 10001 -m 0750 /home/auscult
fi
