"""One service of the suite, or its CLI, on this machine against `make stack`:
`make run-<name>` (python -m devtools.run_service NAME) and `make run-<name>cli`
(python -m devtools.run_service NAME --cli [ARGS...]).

The service gets the settings compose gives it, pointed at 127.0.0.1: its port from suite.toml
(or <NAME>_PORT),
mDNS on 127.0.0.1, its NATS seed, its audit keys and its database's runtime role from
secrets/dev/ (DEVELOPMENT ONLY). PostgreSQL on PG_PORT (5432) and NATS on NATS_PORT (4222) unless
the environment names them otherwise (<NAME>_<SETTING>, e.g. PROMOTION_POSTGRES_CONNECT or
AUDIT_DB_CONNECT, and MICRO_BROKER_ADDRESS).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from devtools.dev_secrets import (
    DEV_JWT_SIGNING_KEY,
    db_password_file,
    development_keys,
    development_nats_keys,
)
from devtools.run import read_env_file
from devtools.stack import REPO_ROOT
from devtools.suite import Service, Suite, load_suite


def service_env(service: Service, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings service runs with against make stack (environ may override them)."""
    env = {
        "MDNS_INTERFACES": "127.0.0.1",
        "MICRO_SERVER_ADDRESS": f"127.0.0.1:{environ.get(f'{service.upper}_PORT') or service.port}",
        "MICRO_BROKER_ADDRESS": environ.get(
            "MICRO_BROKER_ADDRESS", f"127.0.0.1:{environ.get('NATS_PORT') or 4222}"
        ),
        **development_nats_keys().client_env(service.name),
    }
    if service.issues_tokens:
        env["JWT_PRIVATE_KEY_FILE"] = str(DEV_JWT_SIGNING_KEY.relative_to(REPO_ROOT))
    keys = development_keys()
    if service.produces_audit:
        env |= keys.producer_env(service.name)
    if service.consumes_audit:
        env |= keys.consumer_env()
    if service.has_database:
        port = environ.get("PG_PORT") or 5432
        default = f"postgresql://{service.runtime_role}@127.0.0.1:{port}/{service.database}"
        env[service.connect_setting] = environ.get(
            f"{service.upper}_{service.connect_setting}", default
        )
        env[service.password_file_setting] = str(db_password_file(service.runtime_role))
    return env


def cli_env() -> dict[str, str]:
    """A CLI's settings: mDNS on 127.0.0.1 and the seed users' login (docker-compose-cli.env)."""
    return {
        "MDNS_INTERFACES": "127.0.0.1",
        "CLI_PASSWORD": read_env_file(REPO_ROOT / "docker-compose-cli.env")["CLI_PASSWORD"],
    }


USAGE = "python -m devtools.run_service NAME [--cli [CLI ARGUMENTS...]]"


def command(suite: Suite, argv: Sequence[str]) -> list[str]:
    """What to run for argv: the service's server, or its CLI with the arguments given."""
    if not argv or argv[0].startswith("-") or (len(argv) > 1 and argv[1] != "--cli"):
        raise SystemExit(f"usage: {USAGE}")
    name = argv[0]
    if name not in suite.names:
        raise SystemExit(f"{name!r} is no service of suite.toml ({', '.join(suite.names)})")
    if len(argv) > 1:
        return [sys.executable, "-m", f"{name}.client", *argv[2:]]
    return [sys.executable, "-m", f"{name}.server"]


def main(argv: Sequence[str] | None = None) -> None:
    suite = load_suite()
    arguments = sys.argv[1:] if argv is None else list(argv)
    run = command(suite, arguments)
    name = run[2].partition(".")[0]
    service = suite.service(name)
    extra = cli_env() if run[2].endswith(".client") else service_env(service, os.environ)
    os.chdir(REPO_ROOT)
    os.execve(sys.executable, run, {**os.environ, **extra})


if __name__ == "__main__":
    main()
