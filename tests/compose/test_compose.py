"""The suite under docker compose, as a new user meets it: the real docker-compose.yml, the
real images, goTemp's own commands, grpcurl from the host, outages, stop/up and down -v.

The steps build on each other (one stack, brought up once), so they run in file order."""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.stack import REPO_ROOT
from devtools.suite import Service, load_suite
from provision.migrations import VERSIONS, load_migrations
from tests.compose.conftest import (
    GOTEMP_TAG,
    PROJECT,
    Engine,
    eventually_true,
    grpcurl,
    host_port,
)
from tests.helpers import chromium_path

# Every service of the suite (suite.toml), so one made by `make new-service` is covered too.
SUITE = load_suite()
BY_SERVER: dict[str, Service] = {s.server: s for s in SUITE.services}
SERVICES = {s.server: s.port for s in SUITE.services}
GRPC_NAMES = {s.server: s.grpc_service for s in SUITE.services}
PRODUCERS_WITH_CLI = [s for s in SUITE.with_cli if s.produces_audit]
# The CLI scenarios in make demo's order: the producers', then the audit history's.
CLI_RUNS = [(s.client, s.name) for s in SUITE.with_cli if not s.consumes_audit] + [
    (s.client, "") for s in SUITE.with_cli if s.consumes_audit
]


def prometheus() -> str:
    return f"http://127.0.0.1:{host_port(9090)}"


SEED_LOGIN = '{"email": "duck@mymail.com", "pwd": "1234"}'
# what the CLI scenarios changed, by object name: ids parsed from their output
CHANGED: dict[str, str] = {}
KEPT: dict[str, str] = {}


def address(service: str) -> str:
    return f"127.0.0.1:{host_port(SERVICES[service])}"


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


def only_runtime_sessions(engine: Engine, server: str, database: str) -> bool:
    """Every session on database is its service's runtime role's (and there is one)."""
    roles = engine.psql(
        server,
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
    for described in SUITE.with_database:
        server, database = described.database_host, described.database
        versions = engine.psql(server, database, "SELECT version FROM schema_migrations ORDER BY 1")
        expected = [str(m.version) for m in load_migrations(VERSIONS / database)]
        assert versions.split() == expected, (database, versions)
        # (under podman a later `up` recreates the databases it depends on: a service
        # may be between two connections for a moment)
        eventually_true(
            functools.partial(only_runtime_sessions, engine, server, database),
            timeout=60,
            what=f"the sessions on {database} to be {described.runtime_role}'s only",
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


@pytest.mark.parametrize(("cli", "object_name"), CLI_RUNS)
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
        # the history, newest first: the last producer CLI's changes ran just before
        last = PRODUCERS_WITH_CLI[-1].name
        assert re.search(r"\(\d+ records", output) and last in output, output[-3000:]


def test_grpcurl_from_the_host_lists_checks_health_logs_in_and_calls(engine: Engine) -> None:
    # Under podman, `up <cli>` recreates the running dependencies (docs/operations.md says more): a
    # service whose database was just recreated is NOT_SERVING until it answers again.
    for service in SERVICES:
        eventually_true(functools.partial(serving, service), 60, f"{service} SERVING")
    token = login()
    for service in SERVICES:
        method, body, expected = search_call(service)
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
        json.loads(reply.stdout)


# The seed data's answers to the original services' searches; a service without seed data
# (customer, product, one made by `make new-service`) answers its search with a page, maybe empty.
SEED_SEARCHES = {
    "user": ('{"email": "duck@mymail.com"}', "Super Duck"),
    "promotion": ('{"name": "Promo1"}', "Promo1"),
    "audit": ('{"object_name": "user"}', "user"),
}


def search_call(server: str) -> tuple[str, str, str]:
    """(method path, JSON body, text the reply holds) of service's search: the RPC of its
    gRPC service taking its SearchParams message (every service of the suite has one)."""
    described = BY_SERVER[server]
    package, service_name = described.grpc_service.rsplit(".", 1)
    pb2 = importlib.import_module(f"{described.name}.proto.{package.split('.')[-1]}_pb2")
    methods = [
        m.name
        for m in pb2.DESCRIPTOR.services_by_name[service_name].methods
        if m.input_type.name == "SearchParams"
    ]
    assert len(methods) >= 1, f"{described.grpc_service} has no search taking SearchParams"
    body, expected = SEED_SEARCHES.get(described.name, ('{"page_size": 5}', ""))
    return f"{described.grpc_service}/{methods[0]}", body, expected


def gateway() -> str:
    return f"http://127.0.0.1:{host_port(8080)}"


@dataclass
class CurlReply:
    status: int
    headers: dict[str, str]
    body: Any  # the JSON it answered, else its text


def curl(path: str, body: str | None = None, token: str = "") -> CurlReply:
    """The real curl from the host against the gateway's published port: a Connect JSON call
    (POST) when body is given, else a GET. Bounded; the reply's status, headers and JSON."""
    command = ["curl", "-sS", "--max-time", "20", "-D", "-", f"{gateway()}{path}"]
    if body is not None:
        command += ["-H", "content-type: application/json", "--data-binary", body]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"curl {path}: {done.stderr}"
    # (text mode reads the header lines' CRLF as newlines)
    head, _, text = done.stdout.partition("\n\n")
    lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    as_json = "json" in headers.get("content-type", "") and text
    return CurlReply(int(lines[0].split()[1]), headers, json.loads(text) if as_json else text)


def test_the_gateway_answers_curl_from_the_host(engine: Engine) -> None:
    # `docker compose up gateway` brings what it needs: every service of the suite.
    engine.compose("up", "-d", "--wait", "gateway", timeout=300)
    for service in SERVICES:
        assert engine.inspect(service)["State"]["Running"] is True, service
    assert engine.inspect("gateway")["State"]["Health"]["Status"] == "healthy"
    assert curl("/healthz").status == 200
    assert curl("/healthz").body == {"status": "SERVING"}
    # (its dependencies may have been recreated by this `up`: wait for them to answer again)
    for service in SERVICES:
        eventually_true(functools.partial(serving, service), 60, f"{service} SERVING")

    login = curl("/user.UserSrv/Auth", SEED_LOGIN)
    assert login.status == 200, login.body
    token = str(login.body["token"])
    assert login.headers.get("x-request-id"), login.headers
    for service in SERVICES:
        method, body, expected = search_call(service)
        answered = curl(f"/{method}", body, token)
        assert answered.status == 200, (method, answered.body)
        assert expected in json.dumps(answered.body), (method, answered.body)
        # no token, and a token that is not one: Connect's unauthenticated (HTTP 401)
        for bad in ("", "not-a-token"):
            refused = curl(f"/{method}", body, bad)
            assert refused.status == 401, (method, refused.status, refused.body)
            assert refused.body["code"] == "unauthenticated", refused.body
    # a bad request: the service's invalid_argument with its field violations, unchanged
    invalid = curl("/user.UserSrv/CreateUser", "{}", token)
    assert invalid.status == 400 and invalid.body["code"] == "invalid_argument", invalid.body
    assert any(d["type"] == "google.rpc.BadRequest" for d in invalid.body["details"]), invalid.body
    # and a service it does not front: a Connect error, not a traceback
    unknown = curl("/nosuch.NoSrv/Call", "{}", token)
    assert unknown.status == 404 and unknown.body["code"] == "unimplemented", unknown


def test_the_web_ui_loads_and_signs_in_through_the_gateway(engine: Engine) -> None:
    """One check in a real browser (Debian's chromium, driven by Playwright): the UI the
    gateway's image serves loads from the published port, signs in and stays signed in."""
    from playwright.sync_api import expect, sync_playwright

    served = curl("/")
    assert served.status == 200 and "text/html" in served.headers.get("content-type", "")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            page = browser.new_page(base_url=gateway())
            page.set_default_timeout(30_000)
            page.goto("/")
            expect(page).to_have_url(re.compile(r"/login"))
            page.get_by_label("Email").fill("duck@mymail.com")
            page.get_by_label("Password").fill("1234")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("signed-in-as")).to_have_text("Super Duck")
            page.reload()
            expect(page.get_by_test_id("signed-in-as")).to_have_text("Super Duck")
            # and a page of records through the gateway: the seed promotion
            page.goto("/promotion")
            expect(page.get_by_test_id("results")).to_contain_text("Promo1")
        finally:
            browser.close()


# Run inside a promotion container (its image has the service's code): one call to that
# instance with the token in $TOKEN, then the revocation counters of its own /metrics.
PROMOTION_PROBE = """
import asyncio, json, os, urllib.request
import grpc
from promotion.proto import promotion_pb2, promotion_pb2_grpc

async def main():
    found = {"host": os.uname().nodename}
    async with grpc.aio.insecure_channel("127.0.0.1:50051") as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        auth = (("authorization", "Bearer " + os.environ["TOKEN"]),)
        search = promotion_pb2.SearchParams(name="Promo1")
        try:
            await stub.GetPromotions(search, metadata=auth, timeout=10)
            found["code"] = "OK"
        except grpc.aio.AioRpcError as exc:
            found["code"] = exc.code().name
    with urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=10) as reply:
        lines = reply.read().decode().splitlines()
    for name in ("revocations_applied_total", "revocation_fallbacks_total"):
        series = "gotemp_token_" + name
        found[name] = sum(float(l.split()[-1]) for l in lines if l.startswith(series))
    print(json.dumps(found))

asyncio.run(main())
"""
# compose scales a service only when it pins no host port: this run's promotion publishes none
UNPINNED_PROMOTION = "services:\n  promotionsrv:\n    ports: !reset []\n"


def promotion_indexes(engine: Engine) -> list[int]:
    """The compose indexes of the running promotionsrv containers (<project>-promotionsrv-N)."""
    return sorted(
        int(str(c["Name"]).rsplit("-", 1)[1])
        for c in engine.containers()
        if c.get("Service") == "promotionsrv" and c.get("State") == "running"
    )


def probe_promotion(engine: Engine, index: int, token: str) -> dict[str, Any]:
    """Calls the promotion instance index from inside its container; its answer and counters."""
    out = engine.compose(
        "exec",
        "-T",
        "--index",
        str(index),
        "-e",
        f"TOKEN={token}",
        "promotionsrv",
        "python",
        "-c",
        PROMOTION_PROBE,
        timeout=120,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def audit_answer(token: str) -> str:
    reply = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"object_name": "user"}',
        address("auditsrv"),
        "audit.AuditSrv/GetAuditRecords",
    )
    if reply.returncode == 0:
        return "OK"
    return "UNAUTHENTICATED" if "Unauthenticated" in reply.stderr else reply.stderr


def test_a_deactivated_users_token_is_refused_by_two_promotion_instances_and_audit(
    engine: Engine, tmp_path: Path
) -> None:
    unpinned = tmp_path / "unpinned-promotion.yml"
    unpinned.write_text(UNPINNED_PROMOTION)
    engine.compose(
        "up",
        "-d",
        "--wait",
        "--scale",
        "promotionsrv=2",
        "promotionsrv",
        files=(unpinned,),
        timeout=300,
    )
    try:
        indexes = promotion_indexes(engine)
        assert len(indexes) == 2, indexes
        # (this `up` may have recreated the user service and the databases: wait for them)
        for service in ("usersrv", "auditsrv"):
            eventually_true(functools.partial(serving, service), 60, f"{service} SERVING")
        admin = login()
        made = grpcurl(
            "-H",
            f"authorization: Bearer {admin}",
            "-d",
            '{"firstname": "Soon", "lastname": "Revoked", "email": "revoked@example.com",'
            ' "pwd": "x1", "active": true, "valid_from": "2020-01-01T00:00:00Z",'
            ' "valid_thru": "2100-01-01T00:00:00Z"}',
            address("usersrv"),
            "user.UserSrv/CreateUser",
        )
        assert made.returncode == 0, made.stderr
        user = json.loads(made.stdout)["user"]
        got = grpcurl(
            "-d",
            '{"email": "revoked@example.com", "pwd": "x1"}',
            address("usersrv"),
            "user.UserSrv/Auth",
        )
        assert got.returncode == 0, got.stderr
        token = str(json.loads(got.stdout)["token"])

        # served everywhere (and now in each verifier's cache), by two distinct instances
        before = {i: probe_promotion(engine, i, token) for i in indexes}
        assert [b["code"] for b in before.values()] == ["OK", "OK"], before
        assert len({b["host"] for b in before.values()}) == 2, before
        assert audit_answer(token) == "OK"

        user["active"] = False
        changed = grpcurl(
            "-H",
            f"authorization: Bearer {admin}",
            "-d",
            json.dumps(user),
            address("usersrv"),
            "user.UserSrv/UpdateUser",
        )
        assert changed.returncode == 0, changed.stderr
        began = time.monotonic()

        # the feed reaches every verifier: each refuses the old token on its own
        after: dict[int, dict[str, Any]] = {}

        def promotion_refuses(index: int) -> bool:
            after[index] = probe_promotion(engine, index, token)
            return after[index]["code"] == "UNAUTHENTICATED"

        for index in indexes:
            eventually_true(
                functools.partial(promotion_refuses, index),
                30,
                f"promotion instance {index} to refuse the deactivated user's token",
            )
        eventually_true(
            lambda: audit_answer(token) == "UNAUTHENTICATED",
            30,
            "audit to refuse the deactivated user's token",
        )
        print(
            f"\ndeactivated user's token refused by both promotion instances and audit"
            f" {time.monotonic() - began:.1f} s after the change (exec round trips included)"
        )
        for index in indexes:
            # by the feed, not by asking the user service
            assert after[index]["revocations_applied_total"] >= 1, after[index]
            assert (
                after[index]["revocation_fallbacks_total"]
                == before[index]["revocation_fallbacks_total"]
            ), (before[index], after[index])
            # and only that user's: the admin's token is still served by the same instance
            assert probe_promotion(engine, index, admin)["code"] == "OK"
        assert audit_answer(admin) == "OK"
    finally:
        # back to one instance with its published port, for the steps after this one
        engine.compose("up", "-d", "--wait", "promotionsrv", timeout=300)


def prometheus_api(path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{prometheus()}/api/v1/{path}{query}", timeout=10) as response:
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
        jobs = set(SUITE.names)
        eventually_true(
            lambda: all(scrape_health().get(job) == "up" for job in jobs),
            90,
            f"Prometheus to scrape {', '.join(sorted(jobs))}",
        )
        # a GetUsers call with a token now (the steps before may have recreated the user
        # service, under podman, and its counters with it), counted in the next scrape
        eventually_true(functools.partial(serving, "usersrv"), 60, "usersrv SERVING")
        called = grpcurl(
            "-H",
            f"authorization: Bearer {login()}",
            "-d",
            '{"email": "duck@mymail.com"}',
            address("usersrv"),
            "user.UserSrv/GetUsers",
        )
        assert called.returncode == 0, called.stderr
        query = 'grpc_server_handled_total{job="user", grpc_method="GetUsers", grpc_code="OK"}'

        def counted() -> list[dict[str, Any]]:
            return list(prometheus_api("query", query=query)["result"])

        eventually_true(
            lambda: bool(counted()) and float(counted()[0]["value"][1]) >= 1,
            60,
            "Prometheus to count the GetUsers call",
        )
        labels = counted()[0]["metric"]
        assert labels["grpc_service"] == "user.UserSrv" and labels["grpc_type"] == "unary"
        assert labels["instance"] == "usersrv:8080"
        rules = prometheus_api("rules")["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"GotempServiceDown"}
    finally:
        engine.compose("--profile", "observability", "rm", "-fsv", "prometheus", timeout=120)


def test_audit_rows_of_the_cli_changes_are_in_the_timescaledb_container(engine: Engine) -> None:
    # each producer's CLI scenario creates, updates and deletes one object
    expected = {s.name: {"insert", "update", "delete"} for s in PRODUCERS_WITH_CLI}

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
            f"SELECT count(*) FROM audit WHERE objectname = '{name}'"
            f" AND objectid = '{CHANGED[name]}'",
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
    for described in SUITE.services:
        expected = (public[described.nats_public_key_env], "GOTEMP")
        assert seen.get(described.name) == expected, seen
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
    # each stopped itself within its grace (exit 0); killed at the end of it, 137
    assert {service: exit_code(engine, service) for service in SERVICES} == dict.fromkeys(
        SERVICES, 0
    )
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
    tls_files = ("docker-compose.tls.yml",)
    engine.compose("up", "-d", "--wait", *SERVICES, files=tls_files, timeout=300)
    ca = str(REPO_ROOT / "secrets" / "dev" / "tls-DEVELOPMENT-ONLY" / "ca.pem")
    for service in SERVICES:
        name = BY_SERVER[service].name  # the registry name the certificate carries
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
    for server, role in ((s.database_host, s.runtime_role) for s in SUITE.with_database):
        encrypted = engine.psql(
            server,
            "postgres",
            "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s"
            f" JOIN pg_stat_activity a USING (pid) WHERE a.usename = '{role}'",
        )
        total = encrypted.split("/")[1]
        assert int(total) > 0 and encrypted == f"{total}/{total}", (role, encrypted)
    # the CLIs verify their services (and promotion verifies user) with the CA
    for cli in (s.client for s in PRODUCERS_WITH_CLI):
        result = engine.compose("up", cli, files=tls_files, timeout=300)
        assert exit_code(engine, cli) == 0, (result.stdout + result.stderr)[-3000:]

    # and every service reaches NATS over TLS, which it verified with the CA. The CLI runs' `up`
    # may have restarted NATS (podman recreates running dependencies), so a service may still be
    # reconnecting within its backoff: wait for all three, bounded.
    def all_on_tls() -> bool:
        tls = {str(c.get("name")): c.get("tls_version") for c in nats_clients(engine)}
        return all(tls.get(name) for name in SUITE.names)

    eventually_true(all_on_tls, 90, "every service connected to NATS over TLS")


def test_down_v_clears_the_data(engine: Engine) -> None:
    volumes_before = engine.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
    ours = [v for v in volumes_before if v.startswith(f"{PROJECT}_")]
    assert len(ours) == 3, volumes_before
    engine.compose("--profile", "cli", "down", "-v", timeout=180)
    volumes_after = engine.run("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not set(ours) & set(volumes_after)
    assert engine.containers() == []
