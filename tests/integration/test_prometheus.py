"""A real Prometheus (Debian's binary) scraping the three services of the test stack: every
target up, go-grpc-prometheus's labels on what it stored, the alert rules loaded and healthy,
and every metric a dashboard or an alert queries among the names it scraped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from audit.proto import audit_pb2, audit_pb2_grpc
from devtools.dashboards import DASHBOARD_DIR, dashboard_queries, metric_names
from devtools.prometheus import RULES, LocalPrometheus
from global_utils.grpc.host import ServiceHost
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from tests.helpers import eventually

JOBS = ("user", "promotion", "audit")


def side_port(host: ServiceHost) -> int:
    assert host.http is not None and host.http.endpoint is not None
    return host.http.endpoint.port


@pytest.fixture(scope="module")
async def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    user_host: ServiceHost,
    promotion_host: ServiceHost,
    audit_host: ServiceHost,
) -> AsyncIterator[LocalPrometheus]:
    """Prometheus scraping the session's three services every second."""
    hosts = {"user": user_host, "promotion": promotion_host, "audit": audit_host}
    jobs = {job: [f"127.0.0.1:{side_port(host)}"] for job, host in hosts.items()}
    server = LocalPrometheus(tmp_path_factory.mktemp("prometheus"), jobs)
    # started from a thread: the services it scrapes run on this event loop
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def ask(call: Any, *args: Any) -> Any:
    return await asyncio.to_thread(call, *args)


async def test_every_service_target_is_up_and_grpc_series_carry_their_labels(
    prometheus: LocalPrometheus,
    promotion_stub: promotion_pb2_grpc.PromotionSrvStub,
    audit_stub: audit_pb2_grpc.AuditSrvStub,
    auth: tuple[tuple[str, str], ...],
) -> None:
    await promotion_stub.GetPromotions(promotion_pb2.SearchParams(name="x"), metadata=auth)
    await audit_stub.GetAuditRecords(audit_pb2.SearchParams(object_name="user"), metadata=auth)

    async def all_up() -> bool:
        return await ask(prometheus.targets) == dict.fromkeys(JOBS, "up")

    await eventually(all_up, timeout=30, what="every service target up")
    selector = 'grpc_server_handled_total{job="promotion", grpc_method="GetPromotions"}'

    async def stored() -> bool:
        return any(float(r["value"][1]) >= 1 for r in await ask(prometheus.query, selector))

    await eventually(stored, timeout=30, what="the GetPromotions call in Prometheus")
    (ok,) = [r for r in await ask(prometheus.query, selector) if r["metric"]["grpc_code"] == "OK"]
    assert ok["metric"] == {
        "__name__": "grpc_server_handled_total",
        "job": "promotion",
        "instance": ok["metric"]["instance"],
        "grpc_service": "promotion.PromotionSrv",
        "grpc_method": "GetPromotions",
        "grpc_type": "unary",
        "grpc_code": "OK",
    }
    up = await ask(prometheus.query, "sum(up)")
    assert float(up[0]["value"][1]) == len(JOBS)


async def test_the_alert_rules_are_loaded_and_evaluate_without_errors(
    prometheus: LocalPrometheus,
) -> None:
    expected = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }

    async def evaluated() -> bool:
        groups = (await ask(prometheus.api, "rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return {r["name"] for r in rules} == expected and all(
            r["health"] == "ok" and r.get("lastEvaluation", "").startswith("2") for r in rules
        )

    await eventually(evaluated, timeout=30, what="every alert rule evaluated, health ok")


def queried_names() -> dict[str, set[str]]:
    """Every metric name the dashboards and alert rules query, by where it is queried."""
    found: dict[str, set[str]] = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for expr in dashboard_queries(json.loads(path.read_text())):
            for name in metric_names(expr):
                found.setdefault(name, set()).add(path.name)
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                found.setdefault(name, set()).add(f"alert {rule['alert']}")
    return found


async def test_every_metric_dashboards_and_alerts_query_is_one_the_services_export(
    prometheus: LocalPrometheus,
    promotion_stub: promotion_pb2_grpc.PromotionSrvStub,
    audit_stub: audit_pb2_grpc.AuditSrvStub,
    auth: tuple[tuple[str, str], ...],
) -> None:
    # client series exist once promotion and audit have asked the user service something
    await promotion_stub.GetPromotions(promotion_pb2.SearchParams(name="x"), metadata=auth)
    await audit_stub.GetAuditRecords(audit_pb2.SearchParams(object_name="user"), metadata=auth)
    queried = queried_names()
    assert len(queried) > 20  # the parsing found the queries at all
    missing: dict[str, set[str]] = {}

    async def all_scraped() -> bool:
        scraped = await ask(prometheus.metric_names)
        missing.clear()
        missing.update({name: where for name, where in queried.items() if name not in scraped})
        return not missing

    try:
        await eventually(all_scraped, timeout=45, what="every queried metric scraped")
    except AssertionError:
        pytest.fail(f"queried but never exported: {missing}")
