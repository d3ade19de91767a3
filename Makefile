# The two commands of the README: `make run` and `make test`.
# The Dockerfile runs `make setup` too, and its CMD is `make serve`'s deploy/serve.sh,
# so the image is built and started by these same steps.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the app's packages (requirements.txt), then the tests' on top (requirements-test.txt:
# pytest, transformers, Playwright); `make setup`, `make run` and the image install the first only
TEST_STAMP := $(VENV)/.installed-test
PORT ?= 8501
# Listen on this machine only; `make run HOST=0.0.0.0` opens the app to the network
# (then set VIT_EXPLORER_DATA_ROOTS, or visitors may read any folder this user can).
HOST ?= 127.0.0.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup browser run serve test check check-image precompute fashion-mnist demo-model demo-watermark-model clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		echo "Installing python3-venv with apt"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements.txt requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

run: setup serve

# The server as the Docker image runs it (its CMD is this script too; streamlit stops at
# once on SIGTERM or Ctrl-C).
serve:
	PORT=$(PORT) HOST=$(HOST) VENV=$(VENV) deploy/serve.sh

# Debian's Chromium for the real-browser tests (Playwright's own download cannot work offline).
browser:
	@[ -x $(CHROMIUM) ] || { echo "Installing Debian's chromium with apt"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# Every test, the files shared out over the cores (pytest-xdist; a file's tests stay in
# one process, so its fixtures are built once; each process takes its share of the cores).
test: $(TEST_STAMP) browser
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The inner loop: the unit tests not marked slow, on every core (make test runs them all).
check: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -x -n auto -m "not slow and not e2e" tests/unit

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

# Build the Docker image and check it runs (docker or podman; CI has neither, and tests
# the same steps through `make setup` and `make serve`).
check-image:
	deploy/check-image.sh

clean:
	rm -rf $(VENV) cache
