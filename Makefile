# The two commands: `make run` (the whole lifecycle on one machine) and `make test`.
# Both create the environments they need from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
ARGS ?=

.PHONY: run test bench compile clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU build of torch first, so that nothing later resolves a CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[pipeline,bench,dev]'
	# torchaudio's registry wheels carry a CUDA-built extension that cannot load on CPU torch; its
	# pure-Python transforms (MelSpectrogram, AmplitudeToDB) work once the extension is out of the way.
	$(VENV)/bin/python -c "import pathlib, sysconfig; [p.unlink() for p in (pathlib.Path(sysconfig.get_paths()['purelib']) / 'torchaudio' / 'lib').glob('*.so')]"
	touch $@

# seldon-core 1.17.1 pins protobuf<4 and cannot share an environment with kfp (protobuf>=6).
$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e '.[serving]'
	touch $@

run: $(VENV)/.installed $(SERVE_VENV)/.installed
	$(VENV)/bin/auscult run $(ARGS)

test: $(VENV)/.installed $(SERVE_VENV)/.installed
	mkdir -p .auscult/tmp
	TMPDIR=$(CURDIR)/.auscult/tmp $(VENV)/bin/ruff check .
	TMPDIR=$(CURDIR)/.auscult/tmp $(VENV)/bin/pytest -q $(ARGS)

bench: $(VENV)/.installed $(SERVE_VENV)/.installed
	$(VENV)/bin/python -m bench.run $(ARGS)

compile: $(VENV)/.installed
	$(VENV)/bin/auscult compile

clean:
	rm -rf .auscult
