# The two commands of the README: `make run` and `make test`.
# The Dockerfile runs `make setup` too, so the image is built by these same steps.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
# Listen on this machine only; `make run HOST=0.0.0.0` opens the app to the network
# (then set VIT_EXPLORER_DATA_ROOTS, or visitors may read any folder this user can).
HOST ?= 127.0.0.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# glibc returns every freed block of 1 MB or more to the system at once (by default it
# keeps many, and a server's peak memory creeps up with each large model's view: with a
# DINOv2-S at 518 px, 3.7 GB instead of 5.2 GB over the pages; bench.real_size)
MMAP_THRESHOLD ?= 1048576

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser run serve test precompute fashion-mnist demo-model demo-watermark-model clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		echo "Installing python3-venv with apt"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

run: setup serve

serve:
	@echo "ViT Attention Explorer on http://$(HOST):$(PORT)"
	@[ "$(HOST)" = 127.0.0.1 ] || [ "$(HOST)" = localhost ] || [ -n "$$VIT_EXPLORER_DATA_ROOTS" ] || \
		echo "warning: open to the network without VIT_EXPLORER_DATA_ROOTS: visitors can read any folder this user can"
	MALLOC_MMAP_THRESHOLD_=$(MMAP_THRESHOLD) $(BIN)/streamlit run app.py --server.port $(PORT) \
		--server.address $(HOST)

# Debian's Chromium for the real-browser tests (Playwright's own download cannot work offline).
browser:
	@[ -x $(CHROMIUM) ] || { echo "Installing Debian's chromium with apt"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

test: setup browser
	$(BIN)/python -m pytest -q

precompute: setup
	$(BIN)/python -m core.precompute --model demo --images demo

# Training data for the built-in models (only to train them, never at run time).
fashion-mnist:
	@[ -d /usr/share/datasets/fashion-mnist ] || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y dataset-fashion-mnist; }

demo-model: setup fashion-mnist
	$(BIN)/python -m core.cli.train_demo

demo-watermark-model: setup fashion-mnist
	$(BIN)/python -m core.cli.train_demo --watermark --epochs 6

clean:
	rm -rf $(VENV) cache
