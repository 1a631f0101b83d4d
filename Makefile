# The two commands the README opens with:
#   make run    set up, build the OFX bundle, deflicker the bundled sample through the plugin
#   make test   set up, build, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := build
OUT    := out

.PHONY: setup sysdeps bundle test run sample bench clean

setup: sysdeps $(STAMP)

# torch first, pinned to the CPU wheel on disk, so nothing pulls an unpinned CUDA build.
$(STAMP): pyproject.toml | sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# System packages, installed with apt-get only when missing: ffmpeg (tests, ffmpeg bench row),
# venv support and the Python headers and libpython the plugin embeds.
sysdeps:
	@need=""; \
	command -v ffmpeg >/dev/null || need="$$need ffmpeg"; \
	$(PYTHON) -c "import ensurepip" 2>/dev/null || need="$$need python3-venv"; \
	$(PYTHON) -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
		|| need="$$need python3-dev"; \
	if [ -n "$$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; fi

bundle: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(abspath $(BIN)/python) >/dev/null
	cmake --build $(BUILD) -j2

test: bundle
	$(BIN)/python -m pytest

run: bundle
	$(BIN)/python -m deflicker.cli.demo --bundle $(BUILD)/Deflicker.ofx.bundle --out $(OUT)

# Rewrite the committed sample clip (deterministic: the same pixels every time).
sample: setup
	$(BIN)/python samples/make_sample.py

bench: setup
	$(BIN)/deflicker bench --out $(OUT)/bench

clean:
	rm -rf $(BUILD) $(OUT)
