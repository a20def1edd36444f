"""The whole suite on this machine, no Docker: `make run` (serve until Ctrl-C) and `make demo`
(run the CLI scenarios and an audit query, then stop; exit 0 only if all of it worked).

Embedded PostgreSQL and NATS (JetStream, the repository's nats/nats.conf with the development
nkeys) on loopback, provisioned (databases, roles, migrations, the stream), then every service
of the suite (suite.toml) as a process on 127.0.0.1 with mDNS bound to 127.0.0.1, each with its
own NATS credential, and the gateway in front of them (Connect and gRPC-Web for curl and
browsers) serving the web UI: web/build, which `make run` builds first (GATEWAY_STATIC_DIR
names another folder; empty, no UI).
Data is kept in .run/ between runs. Ports: the suite's (goTemp's) where free, else ones the
servers or the system choose as they bind (the table at start shows them); override with
PG_PORT, NATS_PORT, <SERVICE>_PORT (USER_PORT, PROMOTION_PORT, AUDIT_PORT, ...) and
GATEWAY_PORT (8080); 0 leaves the choice to them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from devtools.databases import provision_env, service_db_env
from devtools.dev_secrets import (
    DEV_JWT_SIGNING_KEY,
    DEV_NATS_ENV,
    NatsKeys,
    development_keys,
    development_nats_keys,
)
from devtools.processes import ServiceProcess
from devtools.stack import REPO_ROOT, EmbeddedNats, EmbeddedPostgres, port_open
from devtools.suite import Suite, load_suite
from global_utils.grpc.healthprobe import probe

RUN_DIR = Path(os.environ.get("GOTEMP_RUN_DIR", REPO_ROOT / ".run"))
# The web UI's build (`make web`; `make run` builds it when missing or stale).
WEB_BUILD = REPO_ROOT / "web" / "build"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file (the one home of development values)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def choose_port(variable: str, preferred: int) -> int:
    """The port variable names, else preferred while it is free, else 0: a port the server or
    the system chooses as it binds (no pick that another process could take first)."""
    if os.environ.get(variable):
        return int(os.environ[variable])
    return preferred if not port_open(preferred) else 0


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    grpc_service: str
    port: int
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def development_nats(store_dir: Path, port: int | None = None) -> EmbeddedNats:
    """NATS with the development public keys compose gives its server (nats/docker-compose.env,
    DEVELOPMENT ONLY), not started."""
    return EmbeddedNats(store_dir, port, env=read_env_file(DEV_NATS_ENV))


def plan(
    pg: EmbeddedPostgres,
    broker: EmbeddedNats,
    extra_env: dict[str, str] | None = None,
    nats_keys: NatsKeys | None = None,
    suite: Suite | None = None,
) -> list[Service]:
    """Every service of the suite as a process to start, with the settings compose gives it."""
    # The audit event keys and NATS seeds compose mounts as secrets (secrets/dev/,
    # DEVELOPMENT ONLY).
    keys = development_keys()
    nats_keys = nats_keys or development_nats_keys()
    base = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MDNS_INTERFACES": "127.0.0.1",
        "MICRO_REGISTRY": "mdns",
        "MICRO_BROKER_ADDRESS": broker.address,
        # the token signing key compose mounts as a secret (DEVELOPMENT ONLY)
        "JWT_PRIVATE_KEY_FILE": str(DEV_JWT_SIGNING_KEY),
        **(extra_env or {}),
    }
    services = []
    for described in (suite or load_suite()).services:
        port = choose_port(f"{described.upper}_PORT", described.port)
        env = base | {"MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}"}
        if described.has_database:
            env |= service_db_env(pg, described.name)
        if described.produces_audit:
            env |= keys.producer_env(described.name)
        if described.consumes_audit:
            env |= keys.consumer_env()
        env |= nats_keys.client_env(described.name)
        services.append(
            Service(described.name, f"{described.name}.server", described.grpc_service, port, env)
        )
    return services


@dataclass(frozen=True)
class Gateway:
    """The gateway process's plan: its public port and its environment."""

    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def plan_gateway(extra_env: dict[str, str] | None = None) -> Gateway:
    """The gateway on GATEWAY_PORT (8080 when free), finding the services over mDNS on
    127.0.0.1, its metrics on a free side port."""
    port = choose_port("GATEWAY_PORT", 8080)
    built = (WEB_BUILD / "index.html").is_file() and "GATEWAY_STATIC_DIR" not in os.environ
    web = {"GATEWAY_STATIC_DIR": str(WEB_BUILD)} if built else {}
    return Gateway(
        port,
        {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MDNS_INTERFACES": "127.0.0.1",
            "MICRO_REGISTRY": "mdns",
            "MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "HTTP_ADDRESS": "127.0.0.1:0",
            **web,
            **(extra_env or {}),
        },
    )


# What the gateway's ready line says about its port (the one it got, for port 0).
_GATEWAY_ADDRESS = re.compile(r"gateway ready: Connect and gRPC-Web on [^\s,]*:(\d+)")


def start_gateway(
    gateway: Gateway, log_dir: Path = RUN_DIR / "logs"
) -> tuple[Gateway, ServiceProcess]:
    """The gateway started and ready, with the port it serves on (its ready line's)."""
    process = ServiceProcess("gateway", gateway.env, log_dir / "gateway.log")
    process.wait_for_line("gateway ready", timeout=60)
    found = _GATEWAY_ADDRESS.search(process.output)
    assert found is not None, process.output
    return replace(gateway, port=int(found[1])), process


def on_its_port(service: Service, process: ServiceProcess, timeout: float = 60) -> Service:
    """service with the port its process serves on: the one its ready line names (waited for
    up to timeout seconds, as wait_serving waits) when it asked for port 0."""
    if service.port != 0:
        return service
    process.wait_for_line(" ready: gRPC ", timeout)
    return replace(service, port=int(process.address.rsplit(":", 1)[1]))


async def wait_serving(service: Service, process: ServiceProcess, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe(service.address, timeout=1.0, quiet=True):
        if process.proc.poll() is not None:
            raise RuntimeError(f"{service.name} exited:\n{process.output[-3000:]}")
        if loop.time() > deadline:
            raise TimeoutError(f"{service.name} not SERVING after {timeout}s")
        await asyncio.sleep(0.1)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def grpcurl_command() -> str:
    bundled = Path(sys.prefix) / "bin" / "grpcurl"
    return _relative(bundled) if bundled.exists() else "grpcurl"


def python_command() -> str:
    return _relative(Path(sys.prefix) / "bin" / "python")


# A listing call per service for the "Try it" lines (others: grpcurl describe).
EXAMPLE_CALLS = {"user": "GetUsers", "promotion": "GetPromotions", "audit": "GetAuditRecords"}


def print_table(
    services: list[Service],
    pg: EmbeddedPostgres,
    broker: EmbeddedNats,
    gateway: Gateway | None = None,
) -> None:
    print()
    print(f"{'service':<10} {'gRPC service':<24} {'address':<17} health")
    for s in services:
        print(f"{s.name:<10} {s.grpc_service:<24} {s.address:<17} SERVING")
    if gateway is not None:
        print(f"{'gateway':<10} {'Connect and gRPC-Web':<24} {gateway.url:<17} SERVING")
    databases = "/".join(s.database for s in load_suite().with_database)
    print(f"{'postgres':<10} {databases:<24} 127.0.0.1:{pg.port:<7} ready")
    print(f"{'nats':<10} {'JetStream, subject Audit':<24} {broker.address:<17} ready")
    user = services[0]
    print()
    grpcurl = grpcurl_command()
    print("Try it:")
    print(f"  {grpcurl} -plaintext {user.address} list")
    print(
        f'  TOKEN=$({grpcurl} -plaintext -d \'{{"email":"duck@mymail.com","pwd":"1234"}}\' '
        f"{user.address} user.UserSrv/Auth | python3 -c 'import json,sys; "
        f'print(json.load(sys.stdin)["token"])\')'
    )
    for s in services:
        method = EXAMPLE_CALLS.get(s.name)
        if method is None:
            print(f"  {grpcurl} -plaintext {s.address} describe {s.grpc_service}")
            continue
        print(
            f"  {grpcurl} -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{}}' "
            f"{s.address} {s.grpc_service}/{method}"
        )
    if gateway is not None:
        print(
            "  curl -s -H 'content-type: application/json' "
            f"""-d '{{"email":"duck@mymail.com","pwd":"1234"}}' {gateway.url}/user.UserSrv/Auth"""
        )
    print(f"  MDNS_INTERFACES=127.0.0.1 CLI_PASSWORD=1234 {python_command()} -m user.client")
    if gateway is not None and gateway.env.get("GATEWAY_STATIC_DIR"):
        print(f"Web UI: {gateway.url}/ (duck@mymail.com, password 1234)")
    print(f"Logs: {RUN_DIR / 'logs'}. Ctrl-C stops everything.", flush=True)


def client_runs(suite: Suite) -> list[list[str]]:
    """Each CLI scenario of the suite in its order, the audit history (the consumer's CLI) last."""
    runs = [[f"{s.name}.client"] for s in suite.with_cli if not s.consumes_audit]
    consumer = suite.consumer
    if consumer is not None and consumer.cli:
        runs.append([f"{consumer.name}.client", "--limit", "12"])
    return runs


def run_clients(services: list[Service]) -> bool:
    """The CLI scenarios, then the audit history they left."""
    cli_env = {
        **os.environ,
        "MDNS_INTERFACES": "127.0.0.1",
        "CLI_PASSWORD": read_env_file(REPO_ROOT / "docker-compose-cli.env")["CLI_PASSWORD"],
    }
    ok = True
    suite = load_suite()
    consumer = suite.consumer
    for args in client_runs(suite):
        if consumer is not None and args[0] == f"{consumer.name}.client":
            print("\n== audit history, newest first", flush=True)
        result = subprocess.run([sys.executable, "-m", *args], env=cli_env, cwd=REPO_ROOT)
        ok = ok and result.returncode == 0
        print(flush=True)
    return ok


async def start_services(
    services: list[Service], log_dir: Path = RUN_DIR / "logs"
) -> list[ServiceProcess]:
    processes = []
    for service in services:
        processes.append(
            ServiceProcess(service.module, service.env, log_dir / f"{service.name}.log")
        )

    async def serving(service: Service, process: ServiceProcess) -> None:
        await wait_serving(await asyncio.to_thread(on_its_port, service, process), process)

    await asyncio.gather(*(serving(s, p) for s, p in zip(services, processes, strict=True)))
    return processes


def provision(pg: EmbeddedPostgres, broker: EmbeddedNats) -> None:
    """`python -m provision`, as compose's provision service runs it before the services."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        **provision_env(pg),
        # the broker step: the NATS admin's development seed (compose's secret too)
        "MICRO_BROKER_ADDRESS": broker.address,
        **development_nats_keys().client_env("admin"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "provision"], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"provisioning failed:\n{result.stderr[-3000:]}")


def stop_all(processes: list[ServiceProcess]) -> bool:
    clean = True
    for process in reversed(processes):
        code = process.terminate()
        if code != 0:
            print(f"{process.module} exited {code}; see {process.log_path}", file=sys.stderr)
            clean = False
    return clean


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the suite locally.")
    parser.add_argument("--demo", action="store_true", help="run the CLI scenarios, then stop")
    args = parser.parse_args()
    pg = EmbeddedPostgres(RUN_DIR / "pg", port=choose_port("PG_PORT", 5432))
    broker = development_nats(RUN_DIR / "nats", port=choose_port("NATS_PORT", 4222))
    processes: list[ServiceProcess] = []
    ok = False
    pg.start()
    try:
        broker.start()
        provision(pg, broker)
        services = plan(pg, broker)
        processes = asyncio.run(start_services(services))
        services = [on_its_port(s, p) for s, p in zip(services, processes, strict=True)]
        gateway, gateway_process = start_gateway(plan_gateway())
        processes.append(gateway_process)
        print_table(services, pg, broker, gateway)
        if args.demo:
            ok = run_clients(services)
        else:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            print("\nstopping ...", flush=True)
            ok = True
    finally:
        ok = stop_all(processes) and ok
        broker.stop()
        pg.stop()
    print("stopped" if ok else "FAILED", flush=True)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
