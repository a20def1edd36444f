# goTemp-py shortcuts. `make run` starts the suite locally, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install proto generate dockerfiles certs test test-unit test-static test-integration test-e2e
.PHONY: test-compose test-faults lint run demo clean
help:  ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 24


install: $(STAMP)  ## the virtualenv .venv with everything the project needs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

proto: $(STAMP)  ## regenerate the committed protobuf code
	$(BIN)/python -m devtools.protogen

generate: $(STAMP)  ## rewrite every file generated from suite.toml (templates/); CHECK=1 only lists stale ones
	$(BIN)/python -m devtools.generate $(if $(CHECK),--check)

dockerfiles: generate  ## the Dockerfiles are part of make generate

certs: $(STAMP)  ## DEVELOPMENT-ONLY TLS: a CA and a certificate per component in secrets/dev/tls-DEVELOPMENT-ONLY
	$(BIN)/python -m devtools.certs

test: $(STAMP)  ## every test below: unit, static, integration, e2e (starts its own PostgreSQL and NATS)
	$(BIN)/python -m pytest

test-unit: $(STAMP)  ## tests/unit: the code alone, no server, no network
	$(BIN)/python -m pytest tests/unit

test-static: $(STAMP)  ## tests/static: the files alone (compose, Kubernetes, Dockerfiles, generated code, docs)
	$(BIN)/python -m pytest tests/static

test-integration: $(STAMP)  ## tests/integration: in-process services against a real PostgreSQL and NATS
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP)  ## tests/e2e: whole processes and their CLIs, grpcurl, make run
	$(BIN)/python -m pytest tests/e2e

test-compose: $(STAMP)  ## the live docker compose test (needs a Docker API: Docker, or podman's)
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=1800 -s tests/compose

test-faults: $(STAMP)  ## changes under injected faults, ~30 rounds (FAULT_SEED=n replays one)
	$(BIN)/python -m pytest -p no:cacheprovider tests/faults

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy global_errors global_utils user promotion audit devtools provision gateway

run: $(STAMP)  ## the whole suite locally (embedded PostgreSQL + NATS) until Ctrl-C
	$(BIN)/python -m devtools.run

demo: $(STAMP)  ## the same stack, the CLI scenarios and an audit query, then stop
	$(BIN)/python -m devtools.run --demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Local runs without Docker. Development values come from the compose env files, the only
# place they live.
dev_value = $(shell sed -n 's/^$(1)=//p' $(2) | tail -n 1)
LOCAL_ENV = MDNS_INTERFACES=127.0.0.1 \
	JWT_PRIVATE_KEY_FILE=secrets/dev/jwt-signing-key.DEVELOPMENT-ONLY.pem
# Each service's NATS credential (the make stack server lists their public keys).
nats_seed = NATS_NKEY_SEED_FILE=secrets/dev/nats-seed-$(1).DEVELOPMENT-ONLY

.PHONY: stack run-user run-usercli
stack: $(STAMP)  ## embedded PostgreSQL (5432) + NATS (4222, provisioned) until Ctrl-C; data in .run/
	$(BIN)/python -m devtools.local_stack

run-user: $(STAMP)  ## the user service on 127.0.0.1:50053 against `make stack`
	$(LOCAL_ENV) $(call nats_seed,user) MICRO_SERVER_ADDRESS=127.0.0.1:50053 \
	AUDIT_SIGNING_KEY_ID='$(call dev_value,AUDIT_SIGNING_KEY_ID,user/docker-compose.env)' \
	AUDIT_SIGNING_KEY_FILE=secrets/dev/audit-signing-key-user.DEVELOPMENT-ONLY \
	POSTGRES_CONNECT=$${POSTGRES_CONNECT:-postgresql://appuser_runtime@127.0.0.1:5432/appuser} \
	POSTGRES_PASSWORD_FILE=secrets/dev/db-password-appuser-runtime.DEVELOPMENT-ONLY \
	MICRO_BROKER_ADDRESS=$${MICRO_BROKER_ADDRESS:-127.0.0.1:4222} \
	$(BIN)/python -m user.server

run-usercli: $(STAMP)  ## the user CLI scenario, finding the service over mDNS on 127.0.0.1
	MDNS_INTERFACES=127.0.0.1 CLI_PASSWORD='$(call dev_value,CLI_PASSWORD,docker-compose-cli.env)' \
	$(BIN)/python -m user.client $(ARGS)

.PHONY: run-promotion run-promotioncli
run-promotion: $(STAMP)  ## the promotion service on 127.0.0.1:50051 against `make stack`
	MDNS_INTERFACES=127.0.0.1 $(call nats_seed,promotion) MICRO_SERVER_ADDRESS=127.0.0.1:50051 \
	AUDIT_SIGNING_KEY_ID='$(call dev_value,AUDIT_SIGNING_KEY_ID,promotion/docker-compose.env)' \
	AUDIT_SIGNING_KEY_FILE=secrets/dev/audit-signing-key-promotion.DEVELOPMENT-ONLY \
	POSTGRES_CONNECT=$${PROMOTION_POSTGRES_CONNECT:-postgresql://promotion_runtime@127.0.0.1:5432/promotion} \
	POSTGRES_PASSWORD_FILE=secrets/dev/db-password-promotion-runtime.DEVELOPMENT-ONLY \
	MICRO_BROKER_ADDRESS=$${MICRO_BROKER_ADDRESS:-127.0.0.1:4222} \
	$(BIN)/python -m promotion.server

run-promotioncli: $(STAMP)  ## the promotion CLI scenario (logs in through the user service)
	MDNS_INTERFACES=127.0.0.1 CLI_PASSWORD='$(call dev_value,CLI_PASSWORD,docker-compose-cli.env)' \
	$(BIN)/python -m promotion.client $(ARGS)

.PHONY: run-audit run-auditcli bench bench-quick bench-audit bench-compare bench-tokens
run-audit: $(STAMP)  ## the audit service on 127.0.0.1:50055 against `make stack`
	MDNS_INTERFACES=127.0.0.1 $(call nats_seed,audit) MICRO_SERVER_ADDRESS=127.0.0.1:50055 \
	AUDIT_PRODUCER_KEYS_FILE=secrets/dev/audit-producer-keys.DEVELOPMENT-ONLY \
	DB_CONNECT=$${DB_CONNECT:-postgresql://audit_runtime@127.0.0.1:5432/audit} \
	DB_PASSWORD_FILE=secrets/dev/db-password-audit-runtime.DEVELOPMENT-ONLY \
	MICRO_BROKER_ADDRESS=$${MICRO_BROKER_ADDRESS:-127.0.0.1:4222} \
	$(BIN)/python -m audit.server

run-auditcli: $(STAMP)  ## the audit history, newest first (logs in through the user service)
	MDNS_INTERFACES=127.0.0.1 CLI_PASSWORD='$(call dev_value,CLI_PASSWORD,docker-compose-cli.env)' \
	$(BIN)/python -m audit.client $(ARGS)

bench: $(STAMP)  ## every hot path against its ceiling (about 5 minutes); bench/results.json
	$(BIN)/python -m devtools.bench

bench-quick: $(STAMP)  ## the same, short runs (about a minute)
	$(BIN)/python -m devtools.bench --quick

bench-audit: $(STAMP)  ## audit ingest vs bulk COPY, and change->row lag at 1,000 changes/s
	$(BIN)/python -m devtools.bench_audit

ROUNDS ?= 6
bench-compare: $(STAMP)  ## REV=<revision> [ROUNDS=6]: audit ingest of REV vs the working tree, runs alternated; bench/compare-results.json
	$(if $(REV),,$(error give the older revision: make bench-compare REV=<revision>))
	$(BIN)/python -m devtools.bench_compare '$(REV)' --rounds $(ROUNDS)

bench-tokens: $(STAMP)  ## one token check: cache hit, local EdDSA verification, ValidateToken
	$(BIN)/python -m devtools.bench_tokens

.PHONY: secrets
secrets: $(STAMP)  ## new DEVELOPMENT ONLY keys in secrets/dev/: database passwords, audit event keys, token signing key, NATS nkeys
	$(BIN)/python -m devtools.dev_secrets

# docker compose shortcuts (goTemp's): need Docker with the compose plugin.
COMPOSE ?= docker compose
.PHONY: compose-up compose-down compose-build build-user build-promotion build-audit restart-usercli restart-promotioncli
compose-up:  ## every service (no CLI), detached
	$(COMPOSE) up -d
compose-down:  ## stop and remove the containers (volumes are kept)
	$(COMPOSE) down
compose-build:  ## build every image
	$(COMPOSE) --profile cli build
build-user:  ## the user service image, as goTemp: docker build -t usersrv -f user/Dockerfile .
	docker build -t usersrv -f user/Dockerfile .
build-promotion:
	docker build -t promotionsrv -f promotion/Dockerfile .
build-audit:
	docker build -t auditsrv -f audit/Dockerfile .
restart-usercli:  ## run the user CLI scenario container again
	$(COMPOSE) rm -fsv usercli && $(COMPOSE) up usercli
restart-promotioncli:
	$(COMPOSE) rm -fsv promotioncli && $(COMPOSE) up promotioncli
