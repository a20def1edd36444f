"""A service added to suite.toml is wired into every Kubernetes overlay by `make generate`:
its Deployment, Services, PodDisruptionBudget, NetworkPolicies, TLS and metrics parts and
development Secrets, and the policies let it reach what its `calls` name and nothing else;
the gateway fronts it too (its registry names it, its policies reach it).
The manifests of a grown suite are generated into a copy of deploy/, secrets/ and nats/."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from devtools import generate
from devtools.paths import REPO_ROOT
from devtools.suite import DEV_MARK, Service, Suite, parse_suite
from tests.helpers import spare_names
from tests.static.test_kubernetes_manifests import (
    KUBERNETES_VERSIONS,
    OUTSIDE,
    OVERLAYS,
    TLS_OVERLAYS,
    allowed,
    container_port,
    describe,
    env_value,
    flows,
    monitoring_prometheus,
    named,
    objects,
    pod,
    pod_labels,
    pod_spec,
    render,
    selects,
    service_container,
    workloads,
)

# Three services more: one on PostgreSQL producing audit events and calling two others, one
# with no database, audit events or CLI, one on TimescaleDB with its own settings prefix.
SHOP, WIDGET, LEDGER = NEW = spare_names("shop", "widget", "ledger")
GROWN = f"""
[[service]]
name = "{SHOP}"
grpc_service = "{SHOP}.{SHOP.capitalize()}Srv"
port = 50981
database = "{SHOP}_data"
audit_events = "produces"
calls = ["user", "{WIDGET}"]

[[service]]
name = "{WIDGET}"
grpc_service = "{WIDGET}.{WIDGET.capitalize()}Srv"
port = 50983
cli = false

[[service]]
name = "{LEDGER}"
grpc_service = "{LEDGER}.{LEDGER.capitalize()}Srv"
port = 50985
database = "{LEDGER}"
database_server = "timescaledb"
database_settings = "{LEDGER.upper()}_DB"
calls = ["{SHOP}"]

[service.kubernetes]
limits = {{cpu = "3", memory = "1Gi"}}
"""


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> tuple[Suite, Path]:
    """The grown suite and its generated deploy/kubernetes (in a copy of the repository's
    manifests, secrets and NATS files, with the new services' development secret files)."""
    suite = parse_suite((REPO_ROOT / "suite.toml").read_text() + GROWN)
    root = tmp_path_factory.mktemp("grown")
    for folder in ("deploy", "secrets", "nats"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    generate.write(generate.rendered(suite), root)
    # what make secrets and make certs would add; the manifests only read their names
    for name in NEW:
        service = suite.service(name)
        paths = [service.nats_seed_dev_file]
        if service.has_database:
            paths += [service.password_dev_file(kind) for kind in ("owner", "runtime")]
        if service.produces_audit:
            paths.append(service.signing_key_dev_file)
        tls = f"secrets/dev/tls-{DEV_MARK}"
        paths += [f"{tls}/{name}.pem", f"{tls}/{name}.key"]
        for path in paths:
            (root / path).write_text(f"{DEV_MARK} placeholder for {name}\n")
    return suite, root / "deploy" / "kubernetes"


def new_services(grown: tuple[Suite, Path]) -> list[Service]:
    suite, _ = grown
    return [suite.service(name) for name in NEW]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_of_a_grown_suite_renders_and_validates(
    grown: tuple[Suite, Path], overlay: str
) -> None:
    _, kube = grown
    documents = render(overlay, kube)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
    # the repository's own services are all still there
    assert {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"} >= {
        *NEW,
        "user",
        "promotion",
        "audit",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_new_service_has_its_deployment_services_and_budget(
    grown: tuple[Suite, Path], overlay: str
) -> None:
    suite, kube = grown
    for service in new_services(grown):
        deployment = named(overlay, "Deployment", service.name, kube)
        labels = pod_labels(deployment)
        container = service_container(overlay, service.name, kube)
        assert container["image"] == f"gotemp/{service.name}srv:latest"
        assert container_port(container, "grpc") == service.port
        assert env_value(container, "MICRO_SERVER_ADDRESS")["value"] == f":{service.port}"
        registry = env_value(container, "MICRO_REGISTRY_ADDRESS")["value"].split(",")
        assert [entry.split("=")[0] for entry in registry] == suite.names
        for name in (service.name, f"{service.name}-headless"):
            found = named(overlay, "Service", name, kube)
            assert selects({"matchLabels": found["spec"]["selector"]}, labels)
            assert [p["port"] for p in found["spec"]["ports"]] == [service.port]
        budgets = [
            b
            for b in objects(overlay, "PodDisruptionBudget", kube)
            if selects(b["spec"]["selector"], labels)
        ]
        assert [b["metadata"]["name"] for b in budgets] == [service.name]
        waiters = pod_spec(deployment).get("initContainers", [])
        if service.has_database:
            (waiter,) = waiters
            assert waiter["command"] == ["python", "-m", "provision.wait", service.database]
        else:
            assert not waiters
        if overlay in TLS_OVERLAYS:
            volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
            secret = volumes["tls"]["secret"]["secretName"]
            assert secret.startswith(f"gotemp-tls-{service.name}-")
            assert named(overlay, "Secret", secret, kube)["data"]["tls.crt"]
            probe = container["readinessProbe"]["exec"]["command"]
            assert probe[-1] == f"127.0.0.1:{service.port}"
        if overlay.startswith("dev"):
            assert container["imagePullPolicy"] == "IfNotPresent"
    # its [service.kubernetes] limits in the base, the defaults in the development overlays
    limits = service_container(overlay, LEDGER, kube)["resources"]["limits"]
    development = {"cpu": "500m", "memory": "192Mi"}
    assert limits == (development if overlay.startswith("dev") else {"cpu": "3", "memory": "1Gi"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_new_service_reads_its_own_secrets(grown: tuple[Suite, Path], overlay: str) -> None:
    _, kube = grown
    development = overlay.startswith("dev")
    for service in new_services(grown):
        container = service_container(overlay, service.name, kube)
        volumes = {
            v["name"]: v["secret"]
            for v in pod_spec(named(overlay, "Deployment", service.name, kube))["volumes"]
            if "secret" in v
        }
        wanted = {"nats-credential": (service.nats_seed_key, "seed")}
        if service.has_database:
            wanted["db-password"] = (service.password_key("runtime"), "password")
        if service.produces_audit:
            wanted["audit-key"] = (service.signing_key_key, "signing-key")
        assert set(volumes) - {"tls"} == set(wanted), service.name
        for volume, (key, path) in wanted.items():
            assert volumes[volume]["items"] == [{"key": key, "path": path}], service.name
            if development:  # the overlay makes the Secret, with that key, from secrets/dev
                data = named(overlay, "Secret", volumes[volume]["secretName"], kube)["data"]
                assert DEV_MARK in base64.b64decode(data[key]).decode(), (service.name, key)
        if service.has_database:
            dsn = env_value(container, service.connect_setting)["valueFrom"]["secretKeyRef"]
            assert dsn["key"] == service.connect_key
            if development:
                data = named(overlay, "Secret", dsn["name"], kube)["data"]
                url = urlsplit(base64.b64decode(data[dsn["key"]]).decode())
                assert url.username == service.runtime_role
                assert url.hostname == service.database_server
                assert url.path == f"/{service.database}"
        else:
            assert not [e for e in container["env"] if e["name"].endswith("_CONNECT")]
        if service.produces_audit:
            ref = env_value(container, "AUDIT_SIGNING_KEY_ID")["valueFrom"]["configMapKeyRef"]
            assert ref["key"] == service.name
            if development:
                ids = named(overlay, "ConfigMap", ref["name"], kube)["data"]
                assert ids[service.name] == service.signing_key_id
        else:
            assert "AUDIT_SIGNING_KEY_ID" not in {e["name"] for e in container["env"]}
    # the provisioning Job gets every new database's passwords
    (job,) = [w for w in workloads(overlay, kube) if w["metadata"]["name"] == "provision"]
    env = {e["name"]: e.get("value") for e in pod_spec(job)["containers"][0]["env"]}
    for service in new_services(grown):
        if service.has_database:
            for kind in ("owner", "runtime"):
                path = env[service.password_env(kind)]
                assert path == f"/var/run/secrets/gotemp/db/{service.password_key(kind)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_fronts_every_service_of_a_grown_suite(
    grown: tuple[Suite, Path], overlay: str
) -> None:
    suite, kube = grown
    container = service_container(overlay, "gateway", kube)
    registry = env_value(container, "MICRO_REGISTRY_ADDRESS")["value"].split(",")
    targets = dict(entry.split("=", 1) for entry in registry)
    assert list(targets) == suite.names
    gateway = pod(overlay, "gateway", kube)
    for service in new_services(grown):
        assert targets[service.name] == f"dns:///{service.headless}:{service.port}"
        assert allowed(overlay, gateway, pod(overlay, service.name, kube), service.port, kube=kube)
        assert not allowed(overlay, gateway, pod(overlay, service.name, kube), 8080, kube=kube)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_policies_let_a_new_service_reach_what_it_calls_and_nothing_else(
    grown: tuple[Suite, Path], overlay: str
) -> None:
    suite, kube = grown
    needed, denied = flows(overlay, suite, kube)
    new = {pod(overlay, name, kube) for name in NEW}
    # the flows name the new services both ways, as callers and as called
    assert {s for s, _, _ in needed} & new and {t for _, t, _ in needed} & new
    assert {s for s, _, _ in denied} & new and {t for _, t, _ in denied} & new
    for source, target, port in needed:
        assert allowed(overlay, source, target, port, kube=kube), (
            f"{describe(source)} -> {describe(target)}:{port}"
        )
    for source, target, port in denied:
        assert not allowed(overlay, source, target, port, kube=kube), (
            f"{describe(source)} -> {describe(target)}:{port}"
        )


def test_the_new_services_metrics_are_scraped_by_prometheus_only(
    grown: tuple[Suite, Path],
) -> None:
    _, kube = grown
    overlay = "dev-observability"
    prometheus = monitoring_prometheus()
    for service in new_services(grown):
        metrics = named(overlay, "Service", f"{service.name}-metrics", kube)
        assert metrics["spec"]["selector"] == {"app.kubernetes.io/name": service.name}
        deployment = named(overlay, "Deployment", service.name, kube)
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        target = pod(overlay, service.name, kube)
        assert allowed(overlay, prometheus, target, 8080, kube=kube)
        assert not allowed(overlay, OUTSIDE, target, 8080, kube=kube)
    jobs = (kube / "monitoring" / "prometheus.yml").read_text()
    for name in NEW:
        assert f"{name}-metrics.gotemp.svc.cluster.local" in jobs
