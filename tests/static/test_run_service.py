"""make run-<name> and run-<name>cli (devtools/run_service.py): every service of the suite runs
with the settings its compose env file names, pointed at this machine's make stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.run import client_runs, read_env_file
from devtools.run_service import command, service_env
from devtools.stack import REPO_ROOT
from devtools.suite import load_suite, parse_suite
from tests.helpers import spare_names
from tests.static.test_generated_files import GROWN, SHOP

SUITE = load_suite()
# Compose-only: the side port (a local run picks its own) and the shared file's settings.
COMPOSE_ONLY = {"HTTP_ADDRESS"}


@pytest.mark.parametrize("name", SUITE.names)
def test_a_service_gets_every_setting_compose_gives_it_with_local_values(name: str) -> None:
    service = SUITE.service(name)
    compose = read_env_file(REPO_ROOT / name / "docker-compose.env")
    env = service_env(service, {})
    assert set(compose) - COMPOSE_ONLY <= set(env)
    assert env["MICRO_SERVER_ADDRESS"] == f"127.0.0.1:{service.port}"
    assert env["MICRO_BROKER_ADDRESS"] == "127.0.0.1:4222"
    for setting, value in env.items():
        if setting.endswith("_FILE"):
            assert (REPO_ROOT / value).is_file(), (setting, value)
    if service.has_database:
        assert env[service.connect_setting] == (
            f"postgresql://{service.runtime_role}@127.0.0.1:5432/{service.database}"
        )


def test_ports_and_urls_follow_the_environment() -> None:
    promotion = SUITE.service("promotion")
    env = service_env(promotion, {"PG_PORT": "5999", "NATS_PORT": "4999"})
    assert env["POSTGRES_CONNECT"].startswith("postgresql://promotion_runtime@127.0.0.1:5999/")
    assert env["MICRO_BROKER_ADDRESS"] == "127.0.0.1:4999"
    url = "postgresql://promotion_runtime@db.example:5432/promotion"
    assert service_env(promotion, {"PROMOTION_POSTGRES_CONNECT": url})["POSTGRES_CONNECT"] == url


def test_the_command_is_the_server_or_the_cli_with_its_arguments() -> None:
    assert command(SUITE, ["user"])[1:] == ["-m", "user.server"]
    assert command(SUITE, ["promotion", "--cli", "search", "--product-id", "1001"])[1:] == [
        "-m",
        "promotion.client",
        "search",
        "--product-id",
        "1001",
    ]
    with pytest.raises(SystemExit, match="no service of suite.toml"):
        command(SUITE, [*spare_names("widget")])
    with pytest.raises(SystemExit, match="usage"):
        command(SUITE, ["user", "--verbose"])


@pytest.mark.parametrize("name", SUITE.names)
def test_make_run_name_and_run_namecli_run_it(name: str) -> None:
    def dry_run(*args: str) -> str:
        result = subprocess.run(
            ["make", "-n", f"VENV={sys.prefix}", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    assert f"-m devtools.run_service {name}\n" in dry_run(f"run-{name}")
    assert f"-m devtools.run_service {name} --cli get 5\n" in dry_run(
        f"run-{name}cli", "ARGS=get 5"
    )


def test_make_demo_runs_every_cli_and_the_audit_history_last() -> None:
    grown = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    runs = client_runs(grown)
    assert runs[:2] == [["user.client"], ["promotion.client"]]
    assert runs[-2:] == [[f"{SHOP}.client"], ["audit.client", "--limit", "12"]]
    assert {"customer", "product"} <= {run[0].split(".")[0] for run in runs}
