"""The newcomer path without Docker: `make demo` and `make run` (devtools.run)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stack import REPO_ROOT, wait_until
from devtools.suite import load_suite
from tests.e2e.conftest import base_env


def run_env(folder: Path, mdns_type: str) -> dict[str, str]:
    """make run's environment with every port left to the servers' (and the system's) choice,
    so the run never meets a developer's own stack on goTemp's ports."""
    ports = {
        name: "0"
        for name in (
            "PG_PORT",
            "NATS_PORT",
            "USER_PORT",
            "PROMOTION_PORT",
            "AUDIT_PORT",
            "GATEWAY_PORT",
        )
    }
    return (
        base_env() | ports | {"GOTEMP_RUN_DIR": str(folder / "run"), "MDNS_SERVICE_TYPE": mdns_type}
    )


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder for the run outside pytest's root-only tmp: another pytest session on the
    machine resets that one's mode, and PostgreSQL (its own user under root) must reach in."""
    with tempfile.TemporaryDirectory(prefix="gotemp-run-") as folder:
        yield Path(folder)


def reported_port(folder: Path, name: str, serving: str) -> str:
    """The port a process of the run named in its ready line ("<name> ready: <serving> on
    127.0.0.1:<port>")."""
    log = (folder / "run" / "logs" / f"{name}.log").read_text()
    [port] = re.findall(rf"{name} ready: {serving} on 127\.0\.0\.1:(\d+)", log)
    return str(port)


def test_demo_runs_every_scenario_and_stops_cleanly(scratch: Path, mdns_type: str) -> None:
    env = run_env(scratch, mdns_type)
    result = subprocess.run(
        [sys.executable, "-m", "devtools.run", "--demo"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for service in ("user", "promotion", "audit"):
        # the table shows the port each service reported in its ready line
        port = reported_port(scratch, service, "gRPC \\S+")
        assert re.search(rf"^{service} +\S+ +127\.0\.0\.1:{port} +SERVING$", out, re.M), out
    assert "== all 10 steps passed" in out and "== all 6 steps passed" in out
    # every CLI scenario of the suite ran, and the audit history shows the last one's changes
    scenarios = re.findall(r"^== (\w+) service scenario$", out, re.M)
    assert scenarios == [s.name for s in load_suite().with_cli if s.name != "audit"], scenarios
    assert out.count("== all ") == len(scenarios)
    assert "== audit history, newest first" in out
    assert re.search(rf"^\S+ +{scenarios[-1]} +delete {scenarios[-1]} ", out, re.M), out
    assert out.rstrip().endswith("stopped")
    assert (scratch / "run" / "pg" / "data" / "PG_VERSION").exists()  # data kept for next time


def test_run_serves_until_interrupted(scratch: Path, mdns_type: str) -> None:
    env = run_env(scratch, mdns_type)
    log = scratch / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: "Ctrl-C stops everything" in log.read_text(), 120, "the suite to be up"
            )
            gateway_port = reported_port(scratch, "gateway", "Connect and gRPC-Web")
            # the front door answers curl's form of a call
            login = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-H",
                    "content-type: application/json",
                    "-d",
                    '{"email": "duck@mymail.com", "pwd": "1234"}',
                    f"http://127.0.0.1:{gateway_port}/user.UserSrv/Auth",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert json.loads(login.stdout)["token"], login.stdout + login.stderr
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "grpcurl -plaintext" in text and text.rstrip().endswith("stopped")
    assert "curl -s -H 'content-type: application/json'" in text
    assert f"http://127.0.0.1:{gateway_port}/user.UserSrv/Auth" in text
    for name in ("user", "promotion", "audit", "gateway"):
        assert f"{name} stopped" in (scratch / "run" / "logs" / f"{name}.log").read_text()
