"""Whole processes: `python -m user.server` and its CLI, as a user runs them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.databases import service_db_env
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.processes import ServiceProcess
from devtools.stack import EmbeddedNats, EmbeddedPostgres


def base_env() -> dict[str, str]:
    """The caller's environment without anything that could point a process elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MICRO_", "POSTGRES_", "JWT_", "AUDIT_", "OTEL_", "NATS_"))
    }
    env.update({"PYTHONUNBUFFERED": "1", "MDNS_INTERFACES": "127.0.0.1", "APP_LANGUAGE": "en"})
    return env


@pytest.fixture
def mdns_type() -> str:
    """An mDNS service type of this test's own, so its processes see only each other."""
    return f"_gt-{uuid.uuid4().hex[:8]}._tcp.local."


@pytest.fixture
def user_env(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    jwt_key_file: Path,
    mdns_type: str,
    audit_keys: AuditKeys,
) -> dict[str, str]:
    """Environment for a user service process on a port of the system's choosing (its ready
    line says which: ServiceProcess.address), mDNS on 127.0.0.1."""
    env = base_env() | {"MDNS_SERVICE_TYPE": mdns_type}
    env.update(
        {
            "MICRO_SERVER_ADDRESS": "127.0.0.1:0",
            **service_db_env(postgres, "user"),
            "MICRO_BROKER_ADDRESS": nats_server.address,
            "JWT_PRIVATE_KEY_FILE": str(jwt_key_file),
            "BCRYPT_ROUNDS": "4",
            **audit_keys.producer_env("user"),
            **nats_keys.client_env("user"),
        }
    )
    return env


@pytest.fixture
def promotion_env(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    mdns_type: str,
    audit_keys: AuditKeys,
) -> dict[str, str]:
    """Environment for a promotion service process on a port of the system's choosing (its
    ready line says which: ServiceProcess.address), mDNS on 127.0.0.1."""
    return base_env() | {
        "MDNS_SERVICE_TYPE": mdns_type,
        "MICRO_SERVER_ADDRESS": "127.0.0.1:0",
        **service_db_env(postgres, "promotion"),
        "MICRO_BROKER_ADDRESS": nats_server.address,
        **audit_keys.producer_env("promotion"),
        **nats_keys.client_env("promotion"),
    }


@pytest.fixture
def cli_env(mdns_type: str) -> dict[str, str]:
    """Environment for a CLI that discovers services of this test over mDNS."""
    return base_env() | {"MDNS_SERVICE_TYPE": mdns_type, "CLI_PASSWORD": "1234"}


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], ServiceProcess]]:
    """Starts service processes and makes sure none outlives the test."""
    started: list[ServiceProcess] = []

    def start(module: str, env: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(module, env, tmp_path / f"{module}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
