"""The fault run's own PostgreSQL, NATS and service processes (restartable, unlike the session's
servers), and the report printed at the end of the run."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.databases import provision_databases, service_db_env
from devtools.dev_secrets import make_audit_keys, make_nats_keys
from devtools.nats_stack import start_nats
from devtools.stack import BIND_ATTEMPTS, EmbeddedPostgres, PortTaken, free_port
from tests.faults.chaos import Stack, wait_ready
from user.server.signing_keys import new_signing_key_pem

logger = logging.getLogger(__name__)
REPORT = pytest.StashKey[str]()
SERVICES = ("user", "promotion", "audit")
POOL_MAX = 10  # the services' default DB_POOL_MAX_SIZE


def place(envs: dict[str, dict[str, str]], ports: dict[str, int]) -> None:
    """Each service on its port, and every service's static registry listing them all."""
    registry = ",".join(f"{s}=127.0.0.1:{p}" for s, p in ports.items())
    for service, env in envs.items():
        env["MICRO_SERVER_ADDRESS"] = f"127.0.0.1:{ports[service]}"
        env["MICRO_REGISTRY_ADDRESS"] = registry


def launch_on_free_ports(stack: Stack) -> None:
    """The three services on picked ports (known before any starts: the registry lists them,
    and a restarted service comes back on its own). When one finds its port taken by the time
    it binds, all start again, that one on a new port (up to BIND_ATTEMPTS times)."""
    ports = {service: free_port() for service in SERVICES}
    for attempt in range(1, BIND_ATTEMPTS + 1):
        place(stack.envs, ports)
        for service in SERVICES:
            stack.launch(service)
        try:
            for service in SERVICES:
                wait_ready(stack.processes[service], service)
            return
        except PortTaken as taken:
            stack.stop()
            if attempt == BIND_ATTEMPTS:
                raise
            ports[service] = free_port()
            logger.warning("%s; all three start again, %s on %s", taken, service, ports[service])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    text = config.stash.get(REPORT, "")
    if text:
        terminalreporter.write_sep("=", "fault suite report")
        terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[Stack]:
    """PostgreSQL (provisioned), NATS, and the user, promotion and audit services as
    processes on free loopback ports, finding each other through a static registry."""
    with tempfile.TemporaryDirectory(prefix="gotemp-faults-") as folder:
        root = Path(folder)
        # Durable: with synchronous_commit off (the other tests' setting) an immediate stop
        # loses commits already answered OK, which is that setting's documented trade-off.
        pg = EmbeddedPostgres(root / "pg", durable=True).start()
        provision_databases(pg)
        nats_keys = make_nats_keys(root / "nats-keys")
        # Unacknowledged events of a killed audit process come back within seconds.
        nats = start_nats(root / "nats", nats_keys, ack_wait_seconds=2)
        keys = make_audit_keys(root / "audit-keys")
        common = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(
                    ("MICRO_", "POSTGRES_", "JWT_", "DB_", "MDNS_", "AUDIT_", "NATS_")
                )
            },
            "PYTHONUNBUFFERED": "1",
            "APP_LANGUAGE": "en",
            "MICRO_REGISTRY": "static",
            "MICRO_BROKER_ADDRESS": nats.address,
            "SHUTDOWN_GRACE_SECONDS": "1",
        }
        envs = {
            "user": common
            | {
                **service_db_env(pg, "user"),
                "JWT_PRIVATE_KEY": new_signing_key_pem("token signing key of a fault run"),
                "BCRYPT_ROUNDS": "4",
                "BCRYPT_WORKERS": "1",
                # The workload's wrong passwords (30 % of its logins, all for one email) must
                # stay wrong logins: a throttled one would answer RESOURCE_EXHAUSTED.
                "LOGIN_THROTTLE_ATTEMPTS": "1000000",
                **keys.producer_env("user"),
                **nats_keys.client_env("user"),
            },
            # Every call is authenticated by the user service (no cached tokens), so a user
            # service fault reaches promotion and audit callers.
            "promotion": common
            | {
                **service_db_env(pg, "promotion"),
                "TOKEN_CACHE_SECONDS": "0",
                **keys.producer_env("promotion"),
                **nats_keys.client_env("promotion"),
            },
            "audit": common
            | {
                **service_db_env(pg, "audit"),
                "TOKEN_CACHE_SECONDS": "0",
                **keys.consumer_env(),
                **nats_keys.client_env("audit"),
            },
        }
        # FAULT_LOG_DIR keeps the services' logs after the run.
        logs = Path(os.environ.get("FAULT_LOG_DIR", "") or root / "logs")
        stack = Stack(pg, nats, envs, logs, POOL_MAX, nats_keys.access("admin"))
        try:
            launch_on_free_ports(stack)
            yield stack
        finally:
            stack.stop()
            nats.stop()
            pg.stop()
