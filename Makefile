# llm-selfhost: `make deploy` provisions hosts (the local sandbox by default), `make test` runs
# every check. Both install what they need on a fresh Debian/Ubuntu control machine.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
INVENTORY   ?= inventories/local.py
SANDBOX_HOSTS ?= 1
export SANDBOX_HOSTS
APT_PACKAGES := redis-server debootstrap openssh-client openssl zstd systemd curl iproute2 procps \
                slirp4netns systemd-container haproxy cmake ninja-build g++ prometheus

.PHONY: help venv apt node deps test lint docs unit deploy sandbox-up sandbox-down sandbox-status \
        sandbox-restart check-hosts tunnel gateway gateway-status bench bench-charts bench-limits \
        bench-deploy bench-engine clean up down stop start status autoscale

help: ## list every target
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / {printf "make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "(INVENTORY=$(INVENTORY); INVENTORY=inventories/vast.py for rented hosts)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deploy,test,docs]'
	touch $@

venv: $(VENV)/.installed ## create .venv with every Python dependency

# Debian packages the tests and the sandbox need (skipped when all are present).
apt: ## install the Debian packages the tests and the sandbox need
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi; \
	service redis-server stop >/dev/null 2>&1 || true; \
	service prometheus stop >/dev/null 2>&1 || true

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed ## install the pinned Claude Code CLI (node_modules)

deps: apt venv node ## apt + venv + node

lint: venv ## ruff, mypy and the documentation site (mkdocs build --strict into site/)
	$(BIN)/ruff check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs: venv ## serve the documentation site on http://127.0.0.1:8008 (mkdocs serve), Ctrl-C stops
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

test: deps lint ## install everything and run the whole suite
	$(BIN)/pytest

unit: venv ## the fast tests only (no sandbox, no deploy)
	$(BIN)/pytest tests/unit tests/integration tests/cache tests/ollama_double tests/fleet \
	  tests/vast_double tests/bench

sandbox-up: deps ## start sandbox-1..N (SANDBOX_HOSTS=N, default 1; SANDBOX_KIND=systemd,…; SANDBOX_ENGINE=llamacpp,…)
	$(BIN)/python -m sandbox up

sandbox-down: venv ## stop every sandbox host
	$(BIN)/python -m sandbox down

sandbox-status: venv ## print each sandbox host's state
	$(BIN)/python -m sandbox status

sandbox-restart: venv ## kill and boot one host like a vast.ai stop/start (HOST=sandbox-1)
	$(BIN)/python -m sandbox restart $(or $(HOST),sandbox-1)

# On the sandbox, the fleet's local release server stands in for Ollama's GitHub download
# (inventories/local.py hands its URL and SHA-256 to the deploy); rented hosts download the
# pinned real release. SANDBOX_ENGINE=llamacpp builds llama-server once (cached, ~6+ min) and
# the fleet's hosts run it with SmolLM2 instead of Ollama. devkit.progress prints one line per step and keeps the tools' output in
# DEPLOY_LOG (shown only when a step fails); it runs on the system Python, before the venv exists.
DEPLOY_LOG  ?= deploy.log
CHECK_HOSTS  = $(BIN)/pytest -q -p no:cacheprovider tests/infra --inventory $(INVENTORY) \
               -m "not claude_code"
deploy: ## provision INVENTORY (default: the local sandbox fleet), check it, print the tunnel
	@$(PYTHON) -m devkit.progress --log $(DEPLOY_LOG) \
	  --redact-dir $(or $(SELFHOST_SECRETS_DIR),secrets) \
	  "packages=$(MAKE) --no-print-directory apt" \
	  "venv=$(MAKE) --no-print-directory venv" \
	  "Claude Code CLI=$(MAKE) --no-print-directory node" \
	  $(if $(filter inventories/local.py,$(INVENTORY)),"rootfs=$(BIN)/python -m sandbox build" \
	  $(if $(findstring llamacpp,$(SANDBOX_ENGINE)),"llama-server=$(BIN)/python -m devkit.llamacpp build",) \
	  "sandbox hosts=$(BIN)/python -m sandbox up",) \
	  "deploy=$(BIN)/pyinfra -y $(INVENTORY) deploy.py" \
	  'host checks=$(CHECK_HOSTS)'
	@$(BIN)/python -m fleet.tunnel --inventory $(INVENTORY)

check-hosts: venv ## testinfra host checks against INVENTORY
	$(CHECK_HOSTS)

tunnel: venv ## print the ssh tunnel and Claude Code environment (HOST=name, SHOW_SECRETS=1)
	$(BIN)/python -m fleet.tunnel --inventory $(INVENTORY)$(if $(HOST), --host $(HOST))$(if \
	  $(SHOW_SECRETS), --show-secrets)

# Foreground until Ctrl-C; GATEWAY_PORT (8001) and GATEWAY_STATS_PORT (8404) pick the ports.
gateway: venv apt ## one endpoint for every INVENTORY host: HAProxy over SSH tunnels
	$(BIN)/python -m fleet.gateway run --inventory $(INVENTORY)

gateway-status: venv ## one line per host of the running gateway
	$(BIN)/python -m fleet.gateway status

bench: deps ## benchmarks and their charts (bench/results/)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.gateway

bench-engine: deps ## proxy_app in front of a real engine (llama-server) vs the engine directly, and its KV reuse per turn
	$(BIN)/python -m bench.engine

bench-limits: venv ## what the protocol limits and checks cost: proxy_app before/after in one run
	$(BIN)/python -m bench.limits

bench-charts: venv ## redraw bench/results/*.png from bench/results/latest.json
	$(BIN)/python -m bench.charts

bench-deploy: deps ## time the first deploy and the re-run on fleets of 1 and 2 sandbox hosts
	$(BIN)/python -m bench.deploy

# The vast.ai fleet (instances labelled VAST_LABEL): thin aliases of `python -m fleet`.
COUNT     ?= 1
GPU       ?= RTX_4090
MAX_PRICE ?= 0.40
DISK      ?= 40
up: venv ## rent COUNT vast.ai instances (GPU, MAX_PRICE, DISK, INTERRUPTIBLE=1 BID=, YES=1), deploy, check
	$(BIN)/python -m fleet up --count $(COUNT) --gpu $(GPU) --max-price $(MAX_PRICE) --disk $(DISK) \
	  $(if $(INTERRUPTIBLE),--interruptible,) $(if $(BID),--bid $(BID),) \
	  $(if $(VRAM),--min-vram $(VRAM),) $(if $(YES),--yes,)

down: venv ## destroy the labelled vast.ai instances (VAST_LABEL), asking first unless YES=1
	$(BIN)/python -m fleet down $(if $(YES),--yes,)

stop: venv ## stop the labelled instances (the disk stays, and stays billed)
	$(BIN)/python -m fleet stop

start: venv ## start them again; the services come back without a deploy
	$(BIN)/python -m fleet start

status: venv ## one row per labelled instance: state, cost, health, tokens; the autoscaler (JSON=1)
	$(BIN)/python -m fleet status $(if $(JSON),--json,)

# The gateway with an autoscaler, foreground until Ctrl-C: hosts rented/started when requests
# wait or are refused, drained and stopped when idle, within the budget (docs/autoscaling.md).
MIN_HOSTS ?= 0
MAX_HOSTS ?= 2
BUDGET_PER_HOUR ?= 1.00
BUDGET_PER_DAY ?= 12.00
IDLE_MINUTES ?= 15
SCALE_IN ?= stop
autoscale: venv apt ## the gateway + autoscaler (MIN_HOSTS, MAX_HOSTS, MAX_PRICE, BUDGET_PER_HOUR, …)
	$(BIN)/python -m fleet.autoscale --min-hosts $(MIN_HOSTS) --max-hosts $(MAX_HOSTS) \
	  --max-price $(MAX_PRICE) --budget-per-hour $(BUDGET_PER_HOUR) \
	  --budget-per-day $(BUDGET_PER_DAY) --idle-minutes $(IDLE_MINUTES) --scale-in $(SCALE_IN) \
	  --gpu $(GPU) --disk $(DISK) $(if $(INTERRUPTIBLE),--interruptible,) $(if $(BID),--bid $(BID),) \
	  $(if $(WAIT_SECONDS),--wait-seconds $(WAIT_SECONDS),) \
	  $(if $(SUSTAIN_SECONDS),--sustain-seconds $(SUSTAIN_SECONDS),)

clean: ## remove .venv, node_modules and build output (site/ too)
	rm -rf $(VENV) node_modules build dist site *.egg-info
