# clipmesh — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
# The previous commit of main: `buf breaking` compares the protos against it.
BREAKING_BASE ?= HEAD~1

.PHONY: help install system-deps generate check-generated check-rules render-k8s lint breaking \
        test up demo bench bench-encoder bench-encoder-text bench-index bench-search \
        bench-generator bench-generator-ha bench-bulk-ingest bench-gpu gpu-wheels soak fuzz clean

help:  ## List the targets.
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed node_modules/.installed system-deps  ## Create .venv and install everything.

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,milvus,bulk]"
	touch $@

node_modules/.installed: package.json package-lock.json
	# `npm ci` trips over the optional per-platform buf packages missing from the lock file
	# (npm 11); `npm install` honours the lock and the exact version pinned in package.json.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

system-deps:  ## Install the system tools the tests use (prometheus, promtool, kubectl), when missing.
	@bash tools/install_system_deps.sh

generate: $(VENV)/.installed  ## Regenerate clients/clipmesh_api, protos/google/rpc, docs/errors.md, the dashboards, the rules file.
	$(PY) tools/generate_protos.py
	$(PY) tools/error_reasons.py
	$(PY) -m tools.generate_dashboards
	$(PY) -m tools.generate_prometheus_rules

check-generated: $(VENV)/.installed  ## Fail if generated code, dashboards or rules file are out of date.
	$(PY) tools/generate_protos.py --check
	$(PY) tools/error_reasons.py --check
	$(PY) -m tools.generate_dashboards --check
	$(PY) -m tools.generate_prometheus_rules --check

check-rules: $(VENV)/.installed system-deps  ## promtool check + unit tests of the alert rules.
	$(PY) tools/check_rules.py

render-k8s:  ## Render every kustomize overlay (kubectl kustomize) into build/k8s/.
	@mkdir -p build/k8s
	@for overlay in deploy/k8s/overlays/*/; do \
	  name=$$(basename $$overlay); kubectl kustomize $$overlay > build/k8s/$$name.yaml && \
	  echo "build/k8s/$$name.yaml"; done

lint: $(VENV)/.installed node_modules/.installed  ## ruff + buf lint + buf breaking.
	$(BIN)/ruff check services clients/clipmesh_client tests tools bench fuzz
	$(BIN)/ruff format --check services clients/clipmesh_client tests tools bench fuzz
	$(BUF) lint
	@$(MAKE) --no-print-directory breaking

breaking: node_modules/.installed  ## buf breaking against the previous commit of main.
	@if git rev-parse --verify --quiet "$(BREAKING_BASE)" >/dev/null && \
	    git cat-file -e "$(BREAKING_BASE):protos" 2>/dev/null; then \
	  echo "buf breaking against $(BREAKING_BASE)"; \
	  $(BUF) breaking --against ".git#ref=$(BREAKING_BASE),subdir=protos"; \
	else echo "buf breaking: no earlier protos at $(BREAKING_BASE); nothing to compare"; fi

test: $(VENV)/.installed  ## Run the test suite (every tier).
	$(BIN)/pytest -q

# One tier by its marker (tests/conftest.py marks each test by its folder): make test-unit, …
test-%: $(VENV)/.installed  ## One tier: test-unit, -integration, -e2e, -fault, -hostile, -deploy, -slow.
	$(BIN)/pytest -q -m $*

up: $(VENV)/.installed  ## Run the whole mesh locally (Ctrl-C stops it).
	$(BIN)/clipmesh up

demo: $(VENV)/.installed  ## The main job on the embedded defaults, offline.
	$(BIN)/clipmesh demo

bench: bench-encoder bench-index bench-search bench-generator bench-generator-ha bench-bulk-ingest  ## All benchmarks (tables printed, JSON in bench/results/).

bench-encoder: $(VENV)/.installed  ## Encoder images/s and latency: gRPC vs in-process; text towers.
	$(PY) bench/encoder.py

bench-encoder-text: $(VENV)/.installed  ## Text towers alone (ViT-B-32, xlm-roberta-base; LARGE=1 adds ViT-H-14).
	$(PY) bench/encoder_text.py $(if $(LARGE),--large)

bench-index: $(VENV)/.installed  ## Index build, bytes/vector, recall@10, latency at 100k and 1M.
	$(PY) bench/index.py

bench-search: $(VENV)/.installed  ## End-to-end SearchVideos latency at c=1/4/16, mesh overhead, cache, ingest speed.
	$(PY) bench/search.py

bench-generator: $(VENV)/.installed  ## 500 concurrent generation jobs vs the DashScope protocol server.
	$(PY) bench/generator.py

bench-generator-ha: $(VENV)/.installed system-deps  ## 500 jobs on 3 replicas on PostgreSQL, replicas killed; vs 1 SQLite replica.
	$(PY) bench/generator_ha.py

bench-bulk-ingest: $(VENV)/.installed  ## 200 videos: IngestVideos vs bulk-ingest on Ray, 1 and 2 workers (3 runs each), compared.
	$(PY) bench/bulk_ingest.py

# Not in `make bench`: without CUDA it measures nothing and exits 2 (docs/benchmarks.md, "GPU").
bench-gpu: $(VENV)/.installed  ## Encoder on CUDA (in-process, served at c=1-256), search at 1M; < 8 min.
	$(PY) bench/gpu.py

# The Python of the GPU machine the wheels are for (its image's python3).
GPU_PYTHON ?= 3.12
GPU_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
                 manylinux2014_x86_64 manylinux1_x86_64

gpu-wheels: $(VENV)/.installed  ## Wheels bench/gpu.py needs on a CUDA machine with PyTorch and no network, in .whl/.
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	  --implementation cp $(addprefix --platform ,$(GPU_PLATFORMS)) -d .whl -r bench/gpu-wheels.txt
	@du -sh .whl

# Soak length in seconds: `make soak SOAK_SECONDS=90` for a short run.
SOAK_SECONDS ?= 600

soak: $(VENV)/.installed  ## Mixed search/ingest/generation load for SOAK_SECONDS: errors, p99, RSS.
	$(PY) bench/soak.py --seconds $(SOAK_SECONDS)

# Fuzzing time per harness, in seconds; the unit tests run each for about 10 s.
FUZZ_SECONDS ?= 300

fuzz: $(VENV)/.installed  ## Every atheris harness for FUZZ_SECONDS (fuzz/README.md); JSON in bench/results/.
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

clean:  ## Remove local state (not the venv).
	rm -rf clipmesh-data .pytest_cache .ruff_cache
