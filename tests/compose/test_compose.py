"""The suite under docker compose, as a new user meets it: the real docker-compose.yml, the
real images, goTemp's own commands, grpcurl from the host, outages, stop/up and down -v.

The steps build on each other (one stack, brought up once), so they run in file order."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from devtools.stack import REPO_ROOT
from provision.migrations import VERSIONS, load_migrations
from tests.compose.conftest import GOTEMP_TAG, PROJECT, Engine, eventually_true, grpcurl
from tests.helpers import chromium_path

SERVICES = {"usersrv": 50053, "promotionsrv": 50051, "auditsrv": 50055}
GRPC_NAMES = {
    "usersrv": "user.UserSrv",
    "promotionsrv": "promotion.PromotionSrv",
    "auditsrv": "audit.AuditSrv",
}
PROMETHEUS = "http://127.0.0.1:9090"
GATEWAY = "http://127.0.0.1:8080"
SEED_LOGIN = '{"email": "duck@mymail.com", "pwd": "1234"}'
# what the CLI scenarios changed, by object name: ids parsed from their output
CHANGED: dict[str, str] = {}
KEPT: dict[str, str] = {}


def address(service: str) -> str:
    return f"127.0.0.1:{SERVICES[service]}"


def login() -> str:
    reply = grpcurl("-d", SEED_LOGIN, address("usersrv"), "user.UserSrv/Auth")
    assert reply.returncode == 0, reply.stderr
    return str(json.loads(reply.stdout)["token"])


def health(service: str) -> str:
    reply = grpcurl(address(service), "grpc.health.v1.Health/Check")
    return str(json.loads(reply.stdout)["status"]) if reply.returncode == 0 else reply.stderr


def serving(service: str) -> bool:
    return health(service) == "SERVING"


def exit_code(engine: Engine, service: str) -> int:
    return int(engine.inspect(service)["State"]["ExitCode"])


def test_every_image_builds_and_gotemps_build_command_works(engine: Engine) -> None:
    engine.compose("--profile", "cli", "build", timeout=1200)
    # goTemp's README: docker build -t usersrv -f user/Dockerfile .
    engine.run("build", "-t", GOTEMP_TAG, "-f", "user/Dockerfile", ".", timeout=600)
    sizes = engine.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
    ours = [
        line
        for line in sizes.splitlines()
        if line.split("/")[-1].startswith((f"{PROJECT}-", f"{GOTEMP_TAG}:"))
    ]
    print("\nimages built:\n  " + "\n  ".join(sorted(ours)))
    assert GOTEMP_TAG in sizes


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_becomes_healthy(engine: Engine, service: str) -> None:
    engine.compose("up", "-d", "--wait", service, timeout=300)
    state = engine.inspect(service)["State"]
    assert state["Health"]["Status"] == "healthy"
    assert health(service) == "SERVING"


def only_runtime_sessions(engine: Engine, service: str, database: str) -> bool:
    """Every session on database is its service's runtime role's (and there is one)."""
    roles = engine.psql(
        service,
        "postgres",
        "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity"
        f" WHERE datname = '{database}'",
    )
    return roles == f"{database}_runtime"


def test_the_provision_step_ran_and_the_services_connect_as_their_runtime_roles(
    engine: Engine,
) -> None:
    assert exit_code(engine, "provision") == 0
    logs = engine.compose("logs", "provision").stdout
    assert "provision stopped: every step done" in logs, logs[-3000:]
    for service, databases in (("pgdb", ("appuser", "promotion")), ("timescaledb", ("audit",))):
        for database in databases:
            versions = engine.psql(
                service, database, "SELECT version FROM schema_migrations ORDER BY 1"
            )
            expected = [str(m.version) for m in load_migrations(VERSIONS / database)]
            assert versions.split() == expected, (database, versions)
            # (under podman a later `up` recreates the databases it depends on: a service
            # may be between two connections for a moment)
            eventually_true(
                functools.partial(only_runtime_sessions, engine, service, database),
                timeout=60,
                what=f"the sessions on {database} to be {database}_runtime's only",
            )
    # and the audit service's role may add to the history, never change it
    grants = engine.psql(
        "timescaledb",
        "audit",
        "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type)"
        " FROM information_schema.role_table_grants"
        " WHERE table_name = 'audit' AND grantee = 'audit_runtime'",
    )
    assert grants == "INSERT,SELECT"


def test_databases_and_nats_publish_no_port_on_the_host(engine: Engine) -> None:
    for service in ("pgdb", "timescaledb", "nats"):
        ports = engine.inspect(service)["NetworkSettings"]["Ports"] or {}
        bound = {port: hosts for port, hosts in ports.items() if hosts}
        assert bound == {}, f"{service} publishes {bound}"
    assert engine.inspect("usersrv")["NetworkSettings"]["Ports"]["50053/tcp"]


def test_audit_ready_line_says_how_the_history_is_stored(engine: Engine) -> None:
    logs = engine.compose("logs", "auditsrv").stdout
    ready = [line for line in logs.splitlines() if "audit ready" in line]
    assert ready, logs[-2000:]
    has_timescale = engine.psql(
        "timescaledb", "audit", "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
    )
    expected = "TimescaleDB hypertable" if has_timescale == "1" else "ordinary table"
    assert expected in ready[-1]


@pytest.mark.parametrize(
    ("cli", "object_name"), [("usercli", "user"), ("promotioncli", "promotion"), ("auditcli", "")]
)
def test_cli_containers_find_their_service_over_mdns_and_pass(
    engine: Engine, cli: str, object_name: str
) -> None:
    # goTemp's command, no profile flag: naming the service enables its profile.
    result = engine.compose("up", cli, timeout=300)
    output = result.stdout + result.stderr
    assert exit_code(engine, cli) == 0, output[-3000:]
    if object_name:
        assert "all" in output and "steps passed" in output, output[-3000:]
        created = re.search(r"\(id (\d+)\)|\bid (\d+)", output)
        assert created, output[-3000:]
        CHANGED[object_name] = created.group(1) or created.group(2)
    else:
        # the history, newest first: the promotion CLI's changes ran just before
        assert re.search(r"\(\d+ records", output) and "promotion" in output, output[-3000:]


def test_grpcurl_from_the_host_lists_checks_health_logs_in_and_calls(engine: Engine) -> None:
    # Under podman, `up <cli>` recreates the running dependencies (docs/operations.md says more): a
    # service whose database was just recreated is NOT_SERVING until it answers again.
    for service in SERVICES:
        eventually_true(functools.partial(serving, service), 60, f"{service} SERVING")
    token = login()
    calls = {
        "usersrv": ("user.UserSrv/GetUsers", '{"email": "duck@mymail.com"}', "Super Duck"),
        "promotionsrv": ("promotion.PromotionSrv/GetPromotions", '{"name": "Promo1"}', "Promo1"),
        "auditsrv": ("audit.AuditSrv/GetAuditRecords", '{"object_name": "user"}', "user"),
    }
    for service, (method, body, expected) in calls.items():
        listed = grpcurl(address(service), "list")
        assert listed.returncode == 0 and GRPC_NAMES[service] in listed.stdout, listed.stderr
        assert "grpc.health.v1.Health" in listed.stdout
        refused = grpcurl("-d", body, address(service), method)
        assert "Unauthenticated" in refused.stderr, refused.stderr
        reply = grpcurl(
            "-H", f"authorization: Bearer {token}", "-d", body, address(service), method
        )
        assert reply.returncode == 0, reply.stderr
        assert expected in reply.stdout


def test_the_gateway_answers_curl_and_its_web_ui_signs_in_a_browser(engine: Engine) -> None:
    engine.compose("up", "-d", "--wait", "gateway", timeout=300)
    login = subprocess.run(
        ["curl", "-sS", "-H", "content-type: application/json", "-d", SEED_LOGIN,
         f"{GATEWAY}/user.UserSrv/Auth"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert json.loads(login.stdout)["token"], login.stdout + login.stderr
    # one browser check: the UI the gateway image built, signed in, lists the promotions
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{GATEWAY}/promotion")
            page.get_by_label("Email").fill("duck@mymail.com")
            page.get_by_label("Password").fill("1234")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("results")).to_contain_text("Promo1")
        finally:
            browser.close()


def prometheus_api(path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{PROMETHEUS}/api/v1/{path}{query}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def scrape_health() -> dict[str, str]:
    try:
        targets = prometheus_api("targets", state="active")["activeTargets"]
    except OSError:
        return {}
    return {t["labels"]["job"]: t["health"] for t in targets}


def test_the_observability_profiles_prometheus_scrapes_every_service(engine: Engine) -> None:
    # Grafana and Jaeger have no image on this machine: only Prometheus of the profile runs.
    engine.compose("--profile", "observability", "up", "-d", "--wait", "prometheus", timeout=300)
    try:
        jobs = {"user", "promotion", "audit"}
        eventually_true(
            lambda: all(scrape_health().get(job) == "up" for job in jobs),
            90,
            "Prometheus to scrape user, promotion and audit",
        )
        # the grpcurl calls above: GetUsers with a token, once at least
        series = prometheus_api(
            "query",
            query='grpc_server_handled_total{job="user", grpc_method="GetUsers", grpc_code="OK"}',
        )["result"]
        assert series and float(series[0]["value"][1]) >= 1, series
        labels = series[0]["metric"]
        assert labels["grpc_service"] == "user.UserSrv" and labels["grpc_type"] == "unary"
        assert labels["instance"] == "usersrv:8080"
        rules = prometheus_api("rules")["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"GotempServiceDown"}
    finally:
        engine.compose("--profile", "observability", "rm", "-fsv", "prometheus", timeout=120)


def test_audit_rows_of_the_cli_changes_are_in_the_timescaledb_container(engine: Engine) -> None:
    expected = {"user": {"insert", "update", "delete"}, "promotion": {"insert", "update", "delete"}}

    def stored(name: str) -> set[str]:
        rows = engine.psql(
            "timescaledb",
            "audit",
            f"SELECT actiontype FROM audit WHERE objectname = '{name}'"
            f" AND objectid = '{CHANGED[name]}'",
        )
        return set(rows.split())

    for name, actions in expected.items():
        eventually_true(
            functools.partial(lambda n, a: stored(n) == a, name, actions),
            60,
            f"audit rows of the {name} CLI",
        )
        count = engine.psql(
            "timescaledb",
            "audit",
            f"SELECT count(*) FROM audit WHERE objectid = '{CHANGED[name]}'",
        )
        assert count == "3", f"each change stored once, got {count} rows for {name}"
    hypertable = engine.psql(
        "timescaledb", "audit", "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
    )
    if hypertable == "1":
        assert (
            engine.psql(
                "timescaledb",
                "audit",
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'audit'",
            )
            == "1"
        )


def nats_clients(engine: Engine) -> list[dict[str, object]]:
    """NATS's client connections with who they are (its monitor, inside the container)."""
    out = engine.compose(
        "exec", "-T", "nats", "wget", "-qO-", "http://127.0.0.1:8222/connz?auth=true"
    ).stdout
    return list(json.loads(out)["connections"])


# Tries NATS from a container on the compose network with no credential; says how it went
# (the engine's `compose run` exit status is not the container's everywhere).
ANONYMOUS_CLIENT = """
import asyncio, nats
async def main():
    try:
        await nats.connect("nats://nats:4222", allow_reconnect=False, connect_timeout=5)
    except Exception as exc:
        print("REFUSED", exc)
    else:
        print("CONNECTED")
asyncio.run(main())
"""


def test_nats_knows_each_service_by_its_own_key_and_refuses_anyone_else(engine: Engine) -> None:
    public = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (REPO_ROOT / "nats" / "docker-compose.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    seen = {
        str(c.get("name")): (c.get("authorized_user"), c.get("account"))
        for c in nats_clients(engine)
    }
    for name in ("user", "promotion", "audit"):
        assert seen.get(name) == (public[f"NATS_{name.upper()}_PUBLIC_NKEY"], "GOTEMP"), seen
    refused = engine.compose(
        "run",
        "--rm",
        "--no-deps",
        "--entrypoint",
        "python",
        "auditcli",
        "-c",
        ANONYMOUS_CLIENT,
        timeout=120,
        check=False,
    )
    said = refused.stdout + refused.stderr
    assert "REFUSED" in said and "authorization violation" in said.lower(), said[-2000:]
    assert "CONNECTED" not in said


def test_stop_then_up_keeps_users_promotions_and_history(engine: Engine) -> None:
    token = login()
    made = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"firstname": "Kept", "lastname": "Across", "email": "kept@example.com", "pwd": "x1",'
        ' "valid_from": "2020-01-01T00:00:00Z", "valid_thru": "2100-01-01T00:00:00Z"}',
        address("usersrv"),
        "user.UserSrv/CreateUser",
    )
    assert made.returncode == 0, made.stderr
    KEPT["user"] = json.loads(made.stdout)["user"]["id"]
    eventually_true(
        lambda: (
            engine.psql(
                "timescaledb",
                "audit",
                f"SELECT count(*) FROM audit WHERE objectid = '{KEPT['user']}'",
            )
            == "1"
        ),
        60,
        "the new user's audit row",
    )
    history = engine.psql("timescaledb", "audit", "SELECT count(*) FROM audit")
    promotions = engine.psql("pgdb", "promotion", "SELECT count(*) FROM promotion")

    engine.compose("stop", timeout=180)
    engine.compose("up", "-d", "--wait", *SERVICES, timeout=300)

    token = login()
    got = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        json.dumps({"id": KEPT["user"]}),
        address("usersrv"),
        "user.UserSrv/GetUserById",
    )
    assert got.returncode == 0 and "kept@example.com" in got.stdout, got.stderr
    assert engine.psql("pgdb", "promotion", "SELECT count(*) FROM promotion") == promotions
    assert int(engine.psql("timescaledb", "audit", "SELECT count(*) FROM audit")) >= int(history)


def test_sigterm_stops_a_service_with_exit_0_within_its_grace(engine: Engine) -> None:
    name = str(engine.container("promotionsrv")["Name"])
    started = time.monotonic()
    engine.run("kill", "--signal", "TERM", name)
    eventually_true(
        lambda: engine.inspect("promotionsrv")["State"]["Running"] is False,
        15,
        "promotionsrv to exit after SIGTERM (compose's stop grace is 15 s)",
    )
    print(f"\npromotionsrv stopped {time.monotonic() - started:.1f} s after SIGTERM")
    assert exit_code(engine, "promotionsrv") == 0
    assert "promotion stopped" in engine.compose("logs", "promotionsrv").stdout
    engine.compose("up", "-d", "--wait", "promotionsrv", timeout=300)


def test_database_outage_leaves_the_service_up_and_it_serves_again(engine: Engine) -> None:
    before = engine.inspect("usersrv")["State"]
    token = login()
    engine.compose("stop", "pgdb", timeout=120)
    try:
        eventually_true(lambda: health("usersrv") == "NOT_SERVING", 60, "user NOT_SERVING")
        reply = grpcurl(
            "-H",
            f"authorization: Bearer {token}",
            "-d",
            '{"id": "1"}',
            address("usersrv"),
            "user.UserSrv/GetUserById",
        )
        assert "Unavailable" in reply.stderr, reply.stderr
    finally:
        engine.compose("start", "pgdb", timeout=120)
    eventually_true(lambda: health("usersrv") == "SERVING", 90, "user SERVING again")
    after = engine.inspect("usersrv")["State"]
    # the same process throughout: never restarted
    assert after["StartedAt"] == before["StartedAt"] and after["Running"] is True
    assert login()


def test_the_tls_variant_serves_grpc_over_tls_only(engine: Engine) -> None:
    tls_files = ("-f", "docker-compose.yml", "-f", "docker-compose.tls.yml")
    engine.compose(*tls_files, "up", "-d", "--wait", *SERVICES, timeout=300)
    ca = str(REPO_ROOT / "secrets" / "dev" / "tls-DEVELOPMENT-ONLY" / "ca.pem")
    for service in SERVICES:
        name = GRPC_NAMES[service].split(".")[0]  # the registry name the certificate carries
        listed = grpcurl(address(service), "list", tls=(ca, name))
        assert listed.returncode == 0 and GRPC_NAMES[service] in listed.stdout, listed.stderr
        assert grpcurl(address(service), "list").returncode != 0  # plaintext refused
        ready = [
            line
            for line in engine.compose("logs", service).stdout.splitlines()
            if f"{name} ready" in line
        ]
        assert ready and "(TLS)" in ready[-1], ready
    # and each service's database sessions are TLS ones, verified by name (verify-full)
    for server, role in (
        ("pgdb", "appuser_runtime"),
        ("pgdb", "promotion_runtime"),
        ("timescaledb", "audit_runtime"),
    ):
        encrypted = engine.psql(
            server,
            "postgres",
            "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s"
            f" JOIN pg_stat_activity a USING (pid) WHERE a.usename = '{role}'",
        )
        total = encrypted.split("/")[1]
        assert int(total) > 0 and encrypted == f"{total}/{total}", (role, encrypted)
    # the CLIs verify their services (and promotion verifies user) with the CA
    for cli in ("usercli", "promotioncli"):
        result = engine.compose(*tls_files, "up", cli, timeout=300)
        assert exit_code(engine, cli) == 0, (result.stdout + result.stderr)[-3000:]

    # and every service reaches NATS over TLS, which it verified with the CA. The CLI runs' `up`
    # may have restarted NATS (podman recreates running dependencies), so a service may still be
    # reconnecting within its backoff: wait for all three, bounded.
    def all_on_tls() -> bool:
        tls = {str(c.get("name")): c.get("tls_version") for c in nats_clients(engine)}
        return all(tls.get(name) for name in ("user", "promotion", "audit"))

    eventually_true(all_on_tls, 90, "user, promotion and audit connected to NATS over TLS")


def test_down_v_clears_the_data(engine: Engine) -> None:
    volumes_before = engine.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
    ours = [v for v in volumes_before if v.startswith("gotemp-composetest_")]
    assert len(ours) == 3, volumes_before
    engine.compose("--profile", "cli", "down", "-v", timeout=180)
    volumes_after = engine.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not set(ours) & set(volumes_after)
    assert engine.containers() == []
