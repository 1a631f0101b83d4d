# The two commands the README opens with:
#   make run    set up, build the OFX bundle, deflicker the bundled sample through the plugin
#   make test   set up, build, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := build
OUT    := out

.PHONY: setup ffmpeg bundle test run sample bench clean

setup: $(STAMP) ffmpeg

# torch first, pinned to the CPU wheel on disk, so nothing pulls an unpinned CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

ffmpeg:
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; }

bundle: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(abspath $(BIN)/python) >/dev/null
	cmake --build $(BUILD) -j2

test: bundle
	$(BIN)/python -m pytest

run: bundle
	$(BIN)/python -m deflicker.demo --bundle $(BUILD)/Deflicker.ofx.bundle --out $(OUT)

# Rewrite the committed sample clip (deterministic: the same pixels every time).
sample: setup
	$(BIN)/python samples/make_sample.py

bench: setup
	$(BIN)/deflicker bench --out $(OUT)/bench

clean:
	rm -rf $(BUILD) $(OUT)
