"""Growing the suite in one command: in a scratch copy of the repository, `make new-service`
for a throwaway name, then that service's unit tests and every check of the files it wired in
(the static tests: generated-file drift, compose config, Kubernetes render and schema validation,
Dockerfiles, Prometheus rules and their promtool tests), and nats-server's own check of the
NATS configuration that now lists the new service's user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.paths import REPO_ROOT
from devtools.suite import load_suite
from tests.helpers import spare_names

# a throwaway name no service or fixture of this repository uses
(NAME,) = spare_names("gizmo")


def repository_files() -> list[str]:
    """What a clone would hold, plus files not committed yet (ignored ones left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def run(copy: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run(
        args, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the repository with a throwaway service made by make new-service."""
    copy = tmp_path_factory.mktemp("grown") / "repo"
    for name in repository_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    # the web UI's packages, as `make new-service` installs them first (npm ci; offline here)
    (copy / "web" / "node_modules").symlink_to(REPO_ROOT / "web" / "node_modules")
    # a repository of its own, as a clone is (some checks ask git which files are tracked)
    git = ["git", "-c", "user.name=grow test", "-c", "user.email=grow@test.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the suite"]):
        assert run(copy, *git, *command).returncode == 0
    made = run(copy, sys.executable, "-m", "devtools.new_service", NAME)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"made the {NAME} service" in made.stdout
    # what its author commits next
    assert run(copy, *git, "add", "-A").returncode == 0
    yield copy


def test_the_new_service_is_in_the_suite_with_its_files(grown: Path) -> None:
    suite = load_suite(grown / "suite.toml")
    made = suite.service(NAME)
    assert made.grpc_service == f"{NAME}.{NAME.capitalize()}Srv" and made.port >= 50061
    for path in (
        f"{NAME}/proto/{NAME}_pb2.py",
        f"{NAME}/server/bootstrap.py",
        f"{NAME}/client/cli.py",
        f"provision/versions/{NAME}/0001_baseline.sql",
        f"{NAME}/Dockerfile",
        f"{NAME}/docker-compose.env",
    ):
        assert (grown / path).is_file(), path
    compose = (grown / "docker-compose.yml").read_text()
    assert f"{NAME}srv:" in compose and f"{NAME}cli:" in compose
    assert f"nats_seed_{NAME}" in compose


def test_the_new_services_unit_tests_pass(grown: Path) -> None:
    result = run(grown, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 f"tests/unit/test_{NAME}_rules.py")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


# The whole static suite runs inside: on a loaded two-core machine that is past pytest's
# default 120 s (206 s seen at load 15); its own subprocess timeout (600 s) is the bound.
@pytest.mark.timeout(660)
def test_every_wiring_file_check_passes_with_it(grown: Path) -> None:
    result = run(grown, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/static", timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    drift = run(grown, sys.executable, "-m", "devtools.generate", "--check")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    lint = run(grown, sys.executable, "-m", "ruff", "check", NAME, "tests")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_nats_server_accepts_the_configuration_with_the_new_user(grown: Path) -> None:
    keys = dict(
        line.split("=", 1)
        for line in (grown / "nats" / "docker-compose.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert f"NATS_{NAME.upper()}_PUBLIC_NKEY" in keys
    server = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"
    result = subprocess.run(
        [server, "-t", "-c", str(grown / "nats" / "nats.conf")],
        env={**os.environ, **keys},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"$NATS_{NAME.upper()}_PUBLIC_NKEY" in (grown / "nats" / "nats.conf").read_text()
