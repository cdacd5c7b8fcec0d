# llm-selfhost: `make deploy` provisions hosts (the local sandbox by default), `make test` runs
# every check. Both install what they need on a fresh Debian/Ubuntu control machine.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
INVENTORY   ?= inventories/local.py
APT_PACKAGES := redis-server debootstrap openssh-client openssl zstd systemd curl iproute2 procps

.PHONY: help venv apt node deps test lint unit deploy sandbox-up sandbox-down sandbox-status \
        check-hosts tunnel bench bench-deploy clean up down stop start status

help:
	@echo "make deploy        provision $(INVENTORY) (INVENTORY=inventories/vast.py for rented hosts)"
	@echo "make test          install everything and run the whole suite"
	@echo "make check-hosts   testinfra host checks against INVENTORY"
	@echo "make tunnel        print the ssh tunnel and Claude Code environment (HOST=name)"
	@echo "make sandbox-up / sandbox-down   start / stop the local sandbox host"
	@echo "make bench         benchmarks (bench/results/)"
	@echo "make up COUNT=N GPU=RTX_4090 MAX_PRICE=0.40 [INTERRUPTIBLE=1 BID=…] [DISK=40] [YES=1]"
	@echo "                   rent vast.ai instances, deploy, check, print tunnels (python -m fleet)"
	@echo "make down / stop / start / status [JSON=1]   the labelled (VAST_LABEL) instances"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deploy,test]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests and the sandbox need (skipped when all are present).
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi; \
	service redis-server stop >/dev/null 2>&1 || true

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed

deps: apt venv node

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: deps lint
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit tests/integration tests/cache tests/ollama_double tests/fleet \
	  tests/vast_double

sandbox-up: deps
	$(BIN)/python -m sandbox up

sandbox-down: venv
	$(BIN)/python -m sandbox down

sandbox-status: venv
	$(BIN)/python -m sandbox status

# The sandbox's Ollama comes from a local file server (sandbox/release.py) serving the
# Ollama API double's release archive; rented hosts download the pinned real release.
deploy: deps
ifeq ($(INVENTORY),inventories/local.py)
	$(BIN)/python -m sandbox up
	$(BIN)/python -m sandbox.release -- $(BIN)/pyinfra -y $(INVENTORY) deploy.py
else
	$(BIN)/pyinfra -y $(INVENTORY) deploy.py
endif
	$(BIN)/pytest -q -p no:cacheprovider tests/infra --inventory $(INVENTORY) -m "not claude_code"
	@$(BIN)/python -m fleet.tunnel --inventory $(INVENTORY)

check-hosts: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/infra --inventory $(INVENTORY) -m "not claude_code"

tunnel: venv
	$(BIN)/python -m fleet.tunnel --inventory $(INVENTORY) $(if $(HOST),--host $(HOST),)

bench: deps
	$(BIN)/python -m bench

# First sandbox deploy and idempotent re-run times, for bench/ (rootfs build excluded).
bench-deploy: deps
	DEPLOY_TIMES_FILE=$(CURDIR)/bench/results/deploy_times.json \
	  $(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_sandbox_deploy.py

# The vast.ai fleet (instances labelled VAST_LABEL): thin aliases of `python -m fleet`.
COUNT     ?= 1
GPU       ?= RTX_4090
MAX_PRICE ?= 0.40
DISK      ?= 40
up: venv
	$(BIN)/python -m fleet up --count $(COUNT) --gpu $(GPU) --max-price $(MAX_PRICE) --disk $(DISK) \
	  $(if $(INTERRUPTIBLE),--interruptible,) $(if $(BID),--bid $(BID),) \
	  $(if $(VRAM),--min-vram $(VRAM),) $(if $(YES),--yes,)

down: venv
	$(BIN)/python -m fleet down $(if $(YES),--yes,)

stop: venv
	$(BIN)/python -m fleet stop

start: venv
	$(BIN)/python -m fleet start

status: venv
	$(BIN)/python -m fleet status $(if $(JSON),--json,)

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info
