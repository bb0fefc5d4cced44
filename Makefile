# One command each (see README.md):
#   make run         - install, fetch Fashion-MNIST from Debian, train the default recipe
#   make test        - install, fetch headless Chromium from Debian, run the test suite (CI)
#   make check-pins  - resolve every platform's lock on the package index (CI runs it too)
#   make wheel-smoke - build the wheel, install it into a fresh venv, run the quickstart (CI)
# EXTRAS picks setup.cfg's extras: EXTRAS=gpu,ray,test on an NVIDIA GPU machine
# (tensorflow[and-cuda]); Cloud TPU VMs install through tpu_scripts/install.sh.
# Every version comes from LOCK (locks/, one per platform, as pip constraints).
VENV ?= .venv
EXTRAS ?= ray,test
PYTHON ?= python3
PY := $(VENV)/bin/python
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ifneq (,$(findstring gpu,$(EXTRAS)))
LOCK ?= locks/gpu-linux.txt
else ifeq ($(shell uname -s),Darwin)
LOCK ?= locks/cpu-macos-arm64.txt
else
LOCK ?= locks/cpu-linux-py$(PY_VERSION).txt
endif
MODEL_DIR ?= runs/lenet_fashion_mnist
# pytest-xdist workers for `make test`: one per core of the 2-core CI machine.
TEST_WORKERS ?= 2
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install data browser run test test-fast lint check-pins wheel-smoke

$(STAMP): setup.cfg pyproject.toml $(wildcard $(LOCK))
	@[ -f $(LOCK) ] || { echo "No lock $(LOCK) for Python $(PY_VERSION): use Python 3.10-3.12 (make PYTHON=python3.11 ...) or LOCK=locks/<platform>.txt" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

data:
	@if [ ! -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; \
	  else \
	    echo "No apt-get: put the Fashion-MNIST IDX .gz files in a folder and pass --tfds_manual_dir=FOLDER" >&2; exit 1; \
	  fi; \
	fi

# The TensorBoard viewing tests look through headless Chromium, driven by
# chromedriver's own HTTP API (tests/webdriver.py); without them they skip.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	  else \
	    echo "No apt-get: install Chromium and chromedriver (set CHROMIUM=, CHROMEDRIVER= to their paths), or the browser tests skip" >&2; \
	  fi; \
	fi

run: install data
	$(PY) -m tf_lottery.main --flagfile=flags/lenet_fashion_mnist.cfg --model_dir=$(MODEL_DIR)

# The real-data tests (ResNet-20 and a damaged-file check on Fashion-MNIST) need
# Debian's data set; where apt-get is missing they skip, naming why.
test: install browser
	@$(MAKE) --no-print-directory data || echo "No Fashion-MNIST: the real-data tests skip" >&2
	$(VENV)/bin/ruff check tf_lottery tests benchmarks tools tpu_scripts
	$(VENV)/bin/mypy tf_lottery
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

# The fast tests alone (end-to-end runs, marked slow, left out): for iterating;
# CI runs `make test`.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not slow'

lint: install
	$(VENV)/bin/ruff check tf_lottery tests benchmarks tools tpu_scripts
	$(VENV)/bin/mypy tf_lottery
	$(VENV)/bin/lint-imports

check-pins: install
	PATH=$(VENV)/bin:$$PATH $(PY) tools/resolve_platforms.py

wheel-smoke: install
	PATH=$(VENV)/bin:$$PATH $(PY) tools/wheel_smoke.py --lock=$(LOCK)
