# Two commands on a fresh machine: `make run` serves the OS with the default model (HOST, PORT),
# `make test` runs every test. Both create .venv when it is missing. llama-cpp-python is built portable, once, into a
# wheelhouse under ~/.cache (see scripts/llama-wheel), never from pip's own cache.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
LLAMA_CPP_VERSION := $(shell grep -oE 'llama-cpp-python==[0-9.]+' pyproject.toml | cut -d= -f3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak clean

$(STAMP): pyproject.toml scripts/llama-wheel
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet \
		"$$(scripts/llama-wheel $(VENV)/bin/python $(LLAMA_CPP_VERSION))" -e ".[dev,train,cluster,speech,tracing]"
	touch $(STAMP)

run: $(STAMP)
	scripts/system-packages
	$(VENV)/bin/llmasos serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(STAMP)
	scripts/system-packages test
	$(VENV)/bin/python -m ruff check src tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/throughput.py

# The long load test (about 8 minutes): 64 clients for 5 minutes, then a kill -9 mid-load.
soak: $(STAMP)
	scripts/system-packages
	cd bench && ../$(VENV)/bin/python soak.py --clients $${SOAK_CLIENTS:-64} --seconds $${SOAK_SECONDS:-300}

clean:
	rm -rf $(VENV)
