"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with Kustomize and
validates offline against the Kubernetes JSON schemas (kubernetes-validate ships them); the
rendered objects are checked against what the services, their images and DECISIONS require."""

from __future__ import annotations

import base64
import importlib
import ipaddress
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import nkeys
import pytest
import yaml
from cryptography import x509

from devtools import certs
from devtools.stack import REPO_ROOT
from devtools.suite import Suite, load_suite
from gateway.settings import GatewaySettings
from global_utils.config.groups import GroupedSettings
from global_utils.config.secrets import nkey_seed
from global_utils.config.settings import RegistrySettings
from global_utils.grpc.host import LIVENESS_HEALTH_NAME
from provision.databases import ROLES
from provision.migrations import VERSIONS
from provision.settings import ProvisionSettings
from provision.wait import WaitSettings
from tests.static.test_deploy_files import dockerfile_instructions, final_stage
from user.server.signing_keys import parse_signing_keys

KUBE = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBE / "overlays").iterdir() if path.is_dir())
TLS_OVERLAYS = {"dev-tls"}
PRODUCTION_OVERLAYS = [name for name in OVERLAYS if not name.startswith("dev")]
# Native gRPC probes are GA since 1.27; the oldest and newest schemas checked.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
NAMESPACE = "gotemp"


@dataclass(frozen=True)
class ServiceImage:
    dockerfile: str
    settings: type[GroupedSettings]
    image: str


def settings_class(service: str) -> type[GroupedSettings]:
    """A service's settings class: <name>.server.settings.<Name>Settings."""
    module = importlib.import_module(f"{service}.server.settings")
    found: type[GroupedSettings] = getattr(module, f"{service.capitalize()}Settings")
    return found


# The services are suite.toml's: a service added there is checked here like the others.
SUITE = load_suite()
SERVICES = {
    s.name: ServiceImage(
        f"{s.name}/Dockerfile", settings_class(s.name), f"gotemp/{s.name}srv:latest"
    )
    for s in SUITE.services
}
WITH_DATABASE = [s.name for s in SUITE.with_database]
# The gateway: one for the whole suite, in front of every service (not in suite.toml).
GATEWAY = "gateway"
GATEWAY_IMAGE = "gotemp/gateway:latest"
GATEWAY_DOCKERFILE = REPO_ROOT / "gateway" / "Dockerfile"
DSN_VARIABLES = {s.name: f"{s.database_settings}_CONNECT" for s in SUITE.with_database}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


# --- rendering ---------------------------------------------------------------------------


def kustomize_command(directory: Path) -> list[str]:
    """kubectl's built-in Kustomize, else a standalone kustomize; neither is a failure. No
    flags: what renders here is what `kubectl apply -k` and GitOps tools take, with Kustomize's
    default load restrictor (no file from outside a kustomization's own directory)."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(directory)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(directory)]
    pytest.fail("neither kubectl nor kustomize is on PATH: the manifests cannot be rendered")


def _kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kustomize_command(directory), capture_output=True, text=True, timeout=60, check=False
    )


@cache
def render(overlay: str, kube: Path = KUBE) -> tuple[dict[str, Any], ...]:
    """The overlay's objects, rendered from the manifests under kube (the repository's, or a
    copy generated for another suite)."""
    return _documents(overlay, _kustomize(kube / "overlays" / overlay))


@cache
def render_monitoring() -> tuple[dict[str, Any], ...]:
    """deploy/kubernetes/monitoring: the plain Prometheus (its rules live in deploy/prometheus)."""
    return _documents("monitoring", _kustomize(KUBE / "monitoring"))


def _documents(
    overlay: str, result: subprocess.CompletedProcess[str]
) -> tuple[dict[str, Any], ...]:
    assert result.returncode == 0, f"{overlay}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(overlay: str, kind: str, kube: Path = KUBE) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay, kube) if doc["kind"] == kind]


def named(overlay: str, kind: str, name: str, kube: Path = KUBE) -> dict[str, Any]:
    found = [doc for doc in objects(overlay, kind, kube) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: {kind}/{name}: {len(found)} found"
    return found[0]


def workloads(overlay: str, kube: Path = KUBE) -> list[dict[str, Any]]:
    return [doc for doc in render(overlay, kube) if doc["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def service_container(overlay: str, name: str, kube: Path = KUBE) -> dict[str, Any]:
    deployment = named(overlay, "Deployment", name, kube)
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    return container


def env_value(container: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [e for e in container.get("env", []) if e["name"] == name]
    return entry


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


# --- selectors and NetworkPolicies --------------------------------------------------------


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        matched = {
            "In": present and labels.get(key) in (values or []),
            "NotIn": not present or labels.get(key) not in (values or []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


@dataclass(frozen=True)
class Endpoint:
    """A pod (its namespace and labels) or, with namespace None, an address outside the cluster."""

    namespace: str | None
    labels: tuple[tuple[str, str], ...] = ()
    address: str = ""
    container: tuple[tuple[str, int], ...] = ()  # named ports of the pod

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def pod(overlay: str, name: str, kube: Path = KUBE) -> Endpoint:
    (workload,) = [w for w in workloads(overlay, kube) if w["metadata"]["name"] == name]
    ports = [
        (p["name"], p["containerPort"])
        for c in all_containers(workload)
        for p in c.get("ports", [])
        if "name" in p
    ]
    return Endpoint(NAMESPACE, tuple(sorted(pod_labels(workload).items())), container=tuple(ports))


CLUSTER_DNS = Endpoint("kube-system", (("k8s-app", "kube-dns"),), container=(("dns", 53),))
OUTSIDE = Endpoint(None, address="203.0.113.10")  # a database or broker outside the cluster


def peer_matches(peer: dict[str, Any], other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        if other.namespace is not None:
            return False  # whether an ipBlock covers pod addresses depends on the network plugin
        address = ipaddress.ip_address(other.address)
        excepted = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excepted
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), other.label_map)


def port_matches(rule: dict[str, Any], target: Endpoint, port: int, protocol: str) -> bool:
    if "ports" not in rule:
        return True
    named_ports = dict(target.container)
    for entry in rule["ports"]:
        wanted = entry.get("port")
        if entry.get("protocol", "TCP") != protocol:
            continue
        if (
            wanted is None
            or (named_ports.get(wanted) if isinstance(wanted, str) else wanted) == port
        ):
            return True
    return False


def policies(
    overlay: str, endpoint: Endpoint, direction: str, kube: Path = KUBE
) -> list[dict[str, Any]]:
    if endpoint.namespace != NAMESPACE:
        return []
    return [
        policy
        for policy in objects(overlay, "NetworkPolicy", kube)
        if direction in policy["spec"].get("policyTypes", ["Ingress"])
        and selects(policy["spec"]["podSelector"], endpoint.label_map)
    ]


def allowed(
    overlay: str,
    source: Endpoint,
    target: Endpoint,
    port: int,
    protocol: str = "TCP",
    kube: Path = KUBE,
) -> bool:
    """Whether the overlay's NetworkPolicies let source open port on target (both ends)."""
    egress = policies(overlay, source, "Egress", kube)
    if egress and not any(
        port_matches(rule, target, port, protocol)
        and ("to" not in rule or any(peer_matches(peer, target) for peer in rule["to"]))
        for policy in egress
        for rule in policy["spec"].get("egress", [])
    ):
        return False
    ingress = policies(overlay, target, "Ingress", kube)
    return not ingress or any(
        port_matches(rule, target, port, protocol)
        and ("from" not in rule or any(peer_matches(peer, source) for peer in rule["from"]))
        for policy in ingress
        for rule in policy["spec"].get("ingress", [])
    )


# --- Dockerfiles ---------------------------------------------------------------------------


# --- rendering and schemas -----------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_the_kubernetes_schemas(
    overlay: str, version: str
) -> None:
    documents = render(overlay)
    assert documents
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{document['kind']}/{document['metadata']['name']}"
            pytest.fail(f"{overlay}: {name} is invalid for Kubernetes {version}: {exc.message}")


def test_rendering_keeps_kustomizes_load_restrictor(tmp_path: Path) -> None:
    # what the overlays render with here refuses a file from outside the kustomization, as
    # `kubectl apply -k` does: an overlay that needed the restrictor off would fail above
    (tmp_path / "outside.env").write_text("key=value\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: outside\n    envs: [../outside.env]\n"
    )
    result = _kustomize(overlay)
    assert result.returncode != 0
    assert "outside.env" in result.stderr


def test_no_documented_command_turns_the_load_restrictor_off() -> None:
    flag = "load-" + "restrictor"  # spelt in two so that this file does not match itself
    texts = [
        REPO_ROOT / "Makefile",
        *(p for p in (REPO_ROOT / "deploy").rglob("*") if p.is_file()),
        *(REPO_ROOT / "devtools").rglob("*.py"),
        *(REPO_ROOT / "tests").rglob("*.py"),
    ]
    mentions = [p.relative_to(REPO_ROOT) for p in texts if flag in p.read_text(errors="replace")]
    assert not mentions


def test_the_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = dict(named("prod", "Deployment", "user"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_overlays_are_dev_and_prod_and_put_everything_in_one_namespace() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)
    for overlay in OVERLAYS:
        for document in render(overlay):
            if document["kind"] == "Namespace":
                assert document["metadata"]["name"] == NAMESPACE
            else:
                assert document["metadata"]["namespace"] == NAMESPACE, document["metadata"]


# --- the service Deployments ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_has_native_grpc_probes_on_its_grpc_port(overlay: str, service: str) -> None:
    container = service_container(overlay, service)
    port = container_port(container, "grpc")
    if overlay in TLS_OVERLAYS:
        # Kubernetes' gRPC probes cannot speak TLS: the TLS-aware health probe runs instead
        for probe, args in (
            ("startupProbe", [f"127.0.0.1:{port}", LIVENESS_HEALTH_NAME]),
            ("readinessProbe", [f"127.0.0.1:{port}"]),
            ("livenessProbe", [f"127.0.0.1:{port}", LIVENESS_HEALTH_NAME]),
        ):
            assert "grpc" not in container[probe], (service, probe)
            command = container[probe]["exec"]["command"]
            assert command == ["python", "-m", "global_utils.grpc.healthprobe", *args], command
        return
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, (service, probe)
    # readiness follows the database (the server's overall status); startup and liveness ask
    # the process-only name, so a database outage takes pods out of DNS but restarts none
    assert "service" not in container["readinessProbe"]["grpc"]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"]["service"] == LIVENESS_HEALTH_NAME, (service, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", [*sorted(SERVICES), GATEWAY])
def test_service_runs_at_least_two_replicas_with_a_disruption_budget(
    overlay: str, service: str
) -> None:
    deployment = named(overlay, "Deployment", service)
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    labels = pod_labels(deployment)
    assert selects(deployment["spec"]["selector"], labels)
    budgets = [
        pdb
        for pdb in objects(overlay, "PodDisruptionBudget")
        if selects(pdb["spec"]["selector"], labels)
    ]
    assert len(budgets) == 1, f"{service}: {len(budgets)} PodDisruptionBudgets"
    (budget,) = budgets
    others = [w for w in workloads(overlay) if w is not deployment]
    assert not any(selects(budget["spec"]["selector"], pod_labels(w)) for w in others)
    # at least one pod always serves, and a node drain can still evict one
    if "minAvailable" in budget["spec"]:
        assert 1 <= budget["spec"]["minAvailable"] < replicas
    else:
        assert budget["spec"]["maxUnavailable"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_images_and_ports_are_the_dockerfiles(overlay: str, service: str) -> None:
    spec = SERVICES[service]
    stage = final_stage(REPO_ROOT / spec.dockerfile)
    (exposed,) = [int(rest) for keyword, rest in stage if keyword == "EXPOSE"]
    (uid,) = [
        int(m.group(1)) for k, rest in stage if (m := re.search(r"useradd .*--uid (\d+)", rest))
    ]
    deployment = named(overlay, "Deployment", service)
    container = service_container(overlay, service)
    assert container["image"] == spec.image
    assert container_port(container, "grpc") == exposed
    assert env_value(container, "MICRO_SERVER_ADDRESS")["value"].endswith(f":{exposed}")
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == uid
    for kind in ("headless", "cluster"):
        name = f"{service}-headless" if kind == "headless" else service
        port = next(
            p for p in named(overlay, "Service", name)["spec"]["ports"] if p["name"] == "grpc"
        )
        assert port["port"] == exposed
        assert container_port(container, port["targetPort"]) == exposed


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_pods_start_only_once_their_database_is_provisioned(
    overlay: str, service: str
) -> None:
    deployment = named(overlay, "Deployment", service)
    container = service_container(overlay, service)
    if service not in WITH_DATABASE:  # nothing to wait for
        assert not pod_spec(deployment).get("initContainers")
        return
    (waiter,) = pod_spec(deployment)["initContainers"]
    # the service's own image (it carries provision and its migrations: the next test)
    assert waiter["image"] == container["image"]
    if "imagePullPolicy" in container:
        assert waiter["imagePullPolicy"] == container["imagePullPolicy"]
    database = SUITE.service(service).database
    assert waiter["command"] == ["python", "-m", "provision.wait", database]
    # as the service connects: its URL and password file, and only settings the waiter knows
    dsn = DSN_VARIABLES[service]
    password = dsn.replace("_CONNECT", "_PASSWORD_FILE")
    assert env_value(waiter, dsn) == env_value(container, dsn)
    assert env_value(waiter, password) == env_value(container, password)
    unknown = [
        e["name"] for e in waiter["env"] if e["name"].lower() not in WaitSettings.model_fields
    ]
    assert not unknown
    path = Path(env_value(waiter, password)["value"])
    (mount,) = [m for m in waiter["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    (own,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    assert mount == own
    # and none of the service's other secrets
    assert {m["name"] for m in waiter["volumeMounts"]} == {"tmp", mount["name"]}
    if overlay.startswith("dev"):
        # the database it waits for is the one the service's URL names
        ref = env_value(waiter, dsn)["valueFrom"]["secretKeyRef"]
        url = base64.b64decode(named(overlay, "Secret", ref["name"])["data"][ref["key"]]).decode()
        assert urlsplit(url).path == f"/{database}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_images_carry_the_migrations_the_waiter_compares(service: str) -> None:
    build = dockerfile_instructions(REPO_ROOT / SERVICES[service].dockerfile)
    assert ("COPY", "provision ./provision") in build
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["provision"]
    provision = VERSIONS.parent
    migrations = [PurePosixPath(p.relative_to(provision)) for p in VERSIONS.rglob("*.sql")]
    assert migrations
    for name in migrations:  # what setuptools puts in the wheel the image installs
        assert any(name.match(pattern) for pattern in patterns), name


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_sets_only_variables_its_settings_know(overlay: str, service: str) -> None:
    container = service_container(overlay, service)
    assert "envFrom" not in container  # every name is listed, so it can be checked here
    known = SERVICES[service].settings.variables()
    unknown = [e["name"] for e in container.get("env", []) if e["name"].lower() not in known]
    assert not unknown, f"{service}: {unknown} are not fields of its settings class"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", [*sorted(SERVICES), GATEWAY])
def test_registry_names_the_headless_services(overlay: str, service: str) -> None:
    container = service_container(overlay, service)
    assert env_value(container, "MICRO_REGISTRY")["value"] == "dns"
    entries = env_value(container, "MICRO_REGISTRY_ADDRESS")["value"].split(",")
    targets = dict(entry.split("=", 1) for entry in entries)
    assert set(targets) == set(SERVICES)
    for name, target in targets.items():
        match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
        assert match, target
        headless = named(overlay, "Service", match.group(1))
        assert headless["spec"]["clusterIP"] == "None"
        assert selects(
            {"matchLabels": headless["spec"]["selector"]},
            pod_labels(named(overlay, "Deployment", name)),
        )
        grpc_port = next(p for p in headless["spec"]["ports"] if p["name"] == "grpc")
        assert grpc_port["port"] == int(match.group(2))
    # and the services' own settings take it: one balanced endpoint per service
    registry = RegistrySettings(
        micro_registry="dns",
        micro_registry_address=env_value(container, "MICRO_REGISTRY_ADDRESS")["value"],
    )
    endpoints = registry.static_endpoints
    assert {name: [e.target for e in eps] for name, eps in endpoints.items()} == {
        name: [target] for name, target in targets.items()
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(WITH_DATABASE))
def test_database_dsns_come_from_secret_keys(overlay: str, service: str) -> None:
    entry = env_value(service_container(overlay, service), DSN_VARIABLES[service])
    assert "value" not in entry
    assert entry["valueFrom"]["secretKeyRef"]["key"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jwt_key_file_is_a_mounted_secret(overlay: str) -> None:
    issuer = SUITE.token_issuer.name
    container = service_container(overlay, issuer)
    path = Path(env_value(container, "JWT_PRIVATE_KEY_FILE")["value"])
    volumes = {v["name"]: v for v in pod_spec(named(overlay, "Deployment", issuer))["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if path.parent == Path(m["mountPath"])]
    assert mount.get("readOnly") is True
    secret = volumes[mount["name"]]["secret"]
    assert path.name in [item["path"] for item in secret.get("items", [])] or "items" not in secret
    for other in set(SERVICES) - {issuer}:  # only the token issuer holds the signing key
        names = {e["name"] for e in service_container(overlay, other).get("env", [])}
        assert not names & {"JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE"}


# --- the gateway ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes_ask_healthz_on_its_public_port(overlay: str) -> None:
    container = service_container(overlay, GATEWAY)
    public = env_value(container, "MICRO_SERVER_ADDRESS")["value"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz", probe
        assert f":{container_port(container, check['port'])}" == public, probe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_image_ports_and_user_are_its_dockerfiles_and_composes(overlay: str) -> None:
    stage = final_stage(GATEWAY_DOCKERFILE)
    (exposed,) = [[int(p) for p in rest.split()] for keyword, rest in stage if keyword == "EXPOSE"]
    (uid,) = [
        int(m.group(1)) for k, rest in stage if (m := re.search(r"useradd .*--uid (\d+)", rest))
    ]
    container = service_container(overlay, GATEWAY)
    assert container["image"] == GATEWAY_IMAGE
    public, side = container_port(container, "http"), container_port(container, "metrics")
    assert [public, side] == exposed
    # the addresses compose gives it: the public port and the side port for /metrics
    compose = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in (REPO_ROOT / "gateway" / "docker-compose.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for variable, port in (("MICRO_SERVER_ADDRESS", public), ("HTTP_ADDRESS", side)):
        assert env_value(container, variable)["value"] == compose[variable] == f":{port}"
    assert pod_spec(named(overlay, "Deployment", GATEWAY))["securityContext"]["runAsUser"] == uid
    (port,) = named(overlay, "Service", GATEWAY)["spec"]["ports"]
    assert port["port"] == public
    assert container_port(container, port["targetPort"]) == public


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_sets_only_variables_its_settings_know_and_holds_no_secret(overlay: str) -> None:
    container = service_container(overlay, GATEWAY)
    assert "envFrom" not in container
    known = GatewaySettings.variables()
    unknown = [e["name"] for e in container["env"] if e["name"].lower() not in known]
    assert not unknown, f"{unknown} are not fields of GatewaySettings"
    # no database, broker or signing credential: at most the CA it verifies the services with
    deployment = named(overlay, "Deployment", GATEWAY)
    assert not pod_spec(deployment).get("initContainers")
    assert not [e for e in container["env"] if "valueFrom" in e]
    secrets = [v["secret"] for v in pod_spec(deployment)["volumes"] if "secret" in v]
    if overlay in TLS_OVERLAYS:
        (secret,) = secrets
        assert secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    else:
        assert not secrets
    labels = pod_labels(deployment)
    # not a service: the policies to NATS (by component) leave it out
    assert labels["app.kubernetes.io/component"] == GATEWAY


def test_the_tls_component_gives_the_gateway_the_ca_only() -> None:
    container = service_container("dev-tls", GATEWAY)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not {"TLS_CERT_FILE", "TLS_KEY_FILE"} & set(env)  # it serves plain HTTP
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert env["TLS_CA_FILE"] == f"{mount['mountPath']}/ca.crt"
    volumes = pod_spec(named("dev-tls", "Deployment", GATEWAY))["volumes"]
    (secret,) = [v["secret"]["secretName"] for v in volumes if v["name"] == "tls"]
    data = named("dev-tls", "Secret", secret)["data"]
    assert set(data) == {"ca.crt"}
    assert base64.b64decode(data["ca.crt"]) == (certs.DEFAULT_DIR / "ca.pem").read_bytes()
    # the probes stay HTTP: the gateway's own port serves no TLS
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


# --- every container -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload in workloads(overlay):
        for container in all_containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (
                    f"{workload['metadata']['name']}/{container['name']}: {kind}"
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_unprivileged_on_a_read_only_root(overlay: str) -> None:
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for container in all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp"


# --- NetworkPolicies -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_default_deny_policy_isolates_every_pod(overlay: str) -> None:
    assert any(
        policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
        for policy in objects(overlay, "NetworkPolicy")
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_port_is_reached_by_a_policy(overlay: str) -> None:
    for service in objects(overlay, "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        targets = [w for w in workloads(overlay) if selects(selector, pod_labels(w))]
        assert targets, f"Service {service['metadata']['name']} selects no workload"
        for workload in targets:
            target = pod(overlay, workload["metadata"]["name"])
            (container,) = [
                c
                for c in all_containers(workload)
                if any(
                    p.get("name") == port["targetPort"] or p["containerPort"] == port["targetPort"]
                    for port in service["spec"]["ports"]
                    for p in c.get("ports", [])
                )
            ]
            for port in service["spec"]["ports"]:
                number = container_port(container, port["targetPort"])
                reached = any(
                    port_matches(rule, target, number, port.get("protocol", "TCP"))
                    for policy in policies(overlay, target, "Ingress")
                    for rule in policy["spec"].get("ingress", [])
                )
                assert reached, f"{service['metadata']['name']}:{port['name']} reached by no policy"


Flow = tuple[Endpoint, Endpoint, int]


def flows(overlay: str, suite: Suite = SUITE, kube: Path = KUBE) -> tuple[list[Flow], list[Flow]]:
    """(flows that must be allowed, flows that must be denied) in an overlay, from the suite:
    a service reaches the services its `calls` name and no other, its own database server and
    no other, and NATS; the gateway reaches every service on its gRPC port and nothing else;
    anyone reaches the gRPC ports and the gateway's public port."""
    client = OUTSIDE
    pods = {s.name: pod(overlay, s.name, kube) for s in suite.services}
    provision = pod(overlay, "provision", kube)
    gateway = pod(overlay, GATEWAY, kube)
    needed: list[Flow] = [(client, gateway, 8080)]
    denied: list[Flow] = [(client, provision, 8080), (client, gateway, 8081)]
    denied += [(gateway, OUTSIDE, port) for port in (443, 5432, 4222)]
    ports = [s.port for s in suite.services]
    for index, service in enumerate(suite.services):
        needed.append((gateway, pods[service.name], service.port))
        # not its side port, nor another service's port
        another = ports[(index + 1) % len(ports)]
        denied += [(gateway, pods[service.name], 8080), (gateway, pods[service.name], another)]
        denied.append((pods[service.name], gateway, 8080))
    for service in suite.services:
        source = pods[service.name]
        needed.append((client, source, service.port))
        for other in suite.services:
            if other is not service:
                flow = (source, pods[other.name], other.port)
                (needed if other.name in service.calls else denied).append(flow)
        denied += [(source, OUTSIDE, 443), (provision, source, service.port)]
    if overlay.startswith("dev"):
        nats = pod(overlay, "nats", kube)
        servers = {name: pod(overlay, name, kube) for name in ("postgres", "timescaledb")}
        needed += [(provision, server, 5432) for server in servers.values()]
        needed += [(provision, nats, 4222), (nats, nats, 6222)]
        denied += [(client, server, 5432) for server in servers.values()]
        denied.append((client, nats, 4222))
        denied += [(gateway, server, 5432) for server in servers.values()]
        denied += [(gateway, nats, 4222), (gateway, provision, 8080)]
        for service in suite.services:
            source = pods[service.name]
            needed.append((source, nats, 4222))
            denied += [(source, nats, 6222), (nats, source, service.port)]
            for name, server in servers.items():
                own = service.has_database and service.database_server == name
                (needed if own else denied).append((source, server, 5432))
    else:  # PostgreSQL and NATS are somewhere outside this namespace
        needed += [(s, OUTSIDE, 4222) for s in (*pods.values(), provision)]
        needed.append((provision, OUTSIDE, 5432))
        for service in suite.services:
            (needed if service.has_database else denied).append((pods[service.name], OUTSIDE, 5432))
    return needed, denied


def describe(endpoint: Endpoint) -> str:
    return endpoint.label_map.get("app.kubernetes.io/name") or endpoint.address or "?"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_policies_allow_the_needed_flows_and_no_others(overlay: str) -> None:
    needed, denied = flows(overlay)
    for source, target, port in needed:
        assert allowed(overlay, source, target, port), (
            f"{describe(source)} -> {describe(target)}:{port}"
        )
    for source, target, port in denied:
        assert not allowed(overlay, source, target, port), (
            f"{describe(source)} -> {describe(target)}:{port}"
        )
    for workload in workloads(overlay):
        source = pod(overlay, workload["metadata"]["name"])
        assert allowed(overlay, source, CLUSTER_DNS, 53, "UDP")
        assert allowed(overlay, source, CLUSTER_DNS, 53, "TCP")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_tls_component_gives_each_service_its_certificate_and_the_ca(service: str) -> None:
    container = service_container("dev-tls", service)
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    for variable, file in (
        ("TLS_CERT_FILE", "tls.crt"),
        ("TLS_KEY_FILE", "tls.key"),
        ("TLS_CA_FILE", "ca.crt"),
    ):
        assert env[variable] == f"{mount['mountPath']}/{file}"
    volumes = pod_spec(named("dev-tls", "Deployment", service))["volumes"]
    (secret,) = [v["secret"]["secretName"] for v in volumes if v["name"] == "tls"]
    data = named("dev-tls", "Secret", secret)["data"]
    certificate = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # callers verify the service by its registry name
    assert service in names.get_values_for_type(x509.DNSName)
    assert base64.b64decode(data["ca.crt"]) == (certs.DEFAULT_DIR / "ca.pem").read_bytes()


# --- secrets -------------------------------------------------------------------------------


def kustomizations(directory: Path) -> list[dict[str, Any]]:
    """A kustomization and every one it pulls in (resources, components), depth first."""
    found: list[dict[str, Any]] = []
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            document = yaml.safe_load((directory / name).read_text())
            found.append(document)
            for entry in [*document.get("resources", []), *document.get("components", [])]:
                if (directory / entry).is_dir():
                    found += kustomizations((directory / entry).resolve())
    return found


def referenced_secrets(overlay: str) -> set[str]:
    names = set()
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
        for container in all_containers(workload):
            for entry in container.get("env", []):
                if ref := entry.get("valueFrom", {}).get("secretKeyRef"):
                    names.add(ref["name"])
            for entry in container.get("envFrom", []):
                if "secretRef" in entry:
                    names.add(entry["secretRef"]["name"])
    return names


@pytest.mark.parametrize("overlay", PRODUCTION_OVERLAYS)
def test_production_ships_no_secret_and_mounts_no_development_secret(overlay: str) -> None:
    assert not [s for s in objects(overlay, "Secret") if s.get("data") or s.get("stringData")]
    assert not any(k.get("secretGenerator") for k in kustomizations(KUBE / "overlays" / overlay))
    rendered = yaml.safe_dump_all(render(overlay))
    assert "DEVELOPMENT-ONLY" not in rendered
    development = {s["metadata"]["name"] for s in objects("dev", "Secret")}
    referenced = referenced_secrets(overlay)
    assert referenced, "the services read their DSNs and key from Secrets"
    assert not referenced & development
    assert not [name for name in referenced if "dev" in name.split("-")]
    assert not any("secrets/dev" in str(k) for k in kustomizations(KUBE / "overlays" / overlay))
    # and no database of its own: PostgreSQL and NATS are external
    assert not objects(overlay, "StatefulSet")


def test_development_secrets_hold_only_development_values() -> None:
    secrets = objects("dev", "Secret")
    assert secrets
    for secret in secrets:
        for key, value in secret.get("data", {}).items():
            decoded = base64.b64decode(value).decode()
            if key.endswith("-connect"):
                # a database URL names a role, never its password (that is a file of its own)
                assert re.fullmatch(r"postgresql://[a-z_]+@[a-z]+:5432/[a-z]+", decoded), key
                continue
            assert "DEVELOPMENT-ONLY" in decoded, f"{secret['metadata']['name']}: {key}"
    assert referenced_secrets("dev") <= {s["metadata"]["name"] for s in secrets}


def test_development_audit_keys_match_what_the_audit_service_accepts() -> None:
    # each producer's key id (ConfigMap) and key (Secret) are one line of the audit's list
    # (generated names carry a hash suffix: take them from what the Deployment references)
    producers = [s.name for s in SUITE.producers]
    first = service_container("dev", producers[0])
    ids_name = env_value(first, "AUDIT_SIGNING_KEY_ID")["valueFrom"]["configMapKeyRef"]["name"]
    volumes = pod_spec(named("dev", "Deployment", producers[0]))["volumes"]
    (keys_name,) = [v["secret"]["secretName"] for v in volumes if v["name"] == "audit-key"]
    ids = named("dev", "ConfigMap", ids_name)["data"]
    data = named("dev", "Secret", keys_name)["data"]
    listed = {
        tuple(line.split())
        for line in base64.b64decode(data["producer-keys"]).decode().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(ids) == set(producers)
    for service in producers:
        key = base64.b64decode(data[f"{service}-signing-key"]).decode().strip()
        own_lines = [k for k in key.splitlines() if not k.startswith("#")]
        assert (ids[service], service, own_lines[-1].strip()) in listed, service


def test_development_signing_key_is_one_the_user_service_accepts() -> None:
    volumes = pod_spec(named("dev", "Deployment", "user"))["volumes"]
    (secret,) = [v["secret"] for v in volumes if v["name"] == "jwt"]
    data = named("dev", "Secret", secret["secretName"])["data"]
    (item,) = secret["items"]
    keys = parse_signing_keys(base64.b64decode(data[item["key"]]).decode())
    assert len(keys) == 1


# --- the development data stores ---------------------------------------------------------


def compose_images() -> dict[str, str]:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    return {name: service["image"] for name, service in services.items() if "image" in service}


def test_dev_runs_the_images_compose_and_the_timescaledb_dockerfile_use() -> None:
    images = compose_images()
    (base,) = [rest for k, rest in final_stage(REPO_ROOT / "timescaledb/Dockerfile") if k == "FROM"]
    expected = {"postgres": images["pgdb"], "nats": images["nats"], "timescaledb": base}
    for name, image in expected.items():
        (container,) = pod_spec(named("dev", "StatefulSet", name))["containers"]
        assert container["image"] == image, name


def test_nats_is_a_three_node_jetstream_cluster_with_routes() -> None:
    statefulset = named("dev", "StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    headless = named("dev", "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    (container,) = pod_spec(statefulset)["containers"]
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    config_map = named("dev", "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    config = config_map["data"][config_path.name]
    assert re.search(r"^jetstream\s*\{[^}]*store_dir:\s*/data", config, re.M)
    assert re.search(r"^server_name:\s*\$POD_NAME", config, re.M)
    name, service = statefulset["metadata"]["name"], headless["metadata"]["name"]
    routes = re.findall(r"nats://([a-z0-9.-]+):6222", config)
    assert routes == [f"{name}-{i}.{service}" for i in range(3)]
    data = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    assert data and data[0]["name"] in [
        t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]
    ]
    assert {p["port"] for p in headless["spec"]["ports"]} == {4222, 6222}
    assert env_value(service_container("dev", "user"), "MICRO_BROKER_ADDRESS")["valueFrom"]
    endpoints = [
        c
        for c in objects("dev", "ConfigMap")
        if c["metadata"]["name"].startswith("gotemp-endpoints")
    ]
    assert [c["data"]["micro-broker-address"] for c in endpoints] == ["nats:4222"]
    budget = named("dev", "PodDisruptionBudget", "nats")
    assert budget["spec"]["maxUnavailable"] == 1  # two of three keep JetStream's quorum


def test_nats_runs_the_repository_configuration_with_the_development_public_keys() -> None:
    statefulset = named("dev", "StatefulSet", "nats")
    (container,) = pod_spec(statefulset)["containers"]
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/nats"]
    config = named("dev", "ConfigMap", volumes[mount["name"]]["configMap"]["name"])["data"]
    assert config["nats.conf"] == (REPO_ROOT / "nats" / "nats.conf").read_text()
    assert re.search(r"^include \./nats\.conf$", config["nats-cluster.conf"], re.M)
    # the public keys nats.conf reads from the environment are those of the services' seeds
    (users,) = [e["configMapRef"]["name"] for e in container["envFrom"]]
    public = named("dev", "ConfigMap", users)["data"]
    secret_names = {
        v["secret"]["secretName"]
        for workload in workloads("dev")
        for v in pod_spec(workload).get("volumes", [])
        if v["name"] == "nats-credential"
    }
    (secret_name,) = secret_names
    seeds = named("dev", "Secret", secret_name)["data"]
    for service in SERVICES:
        seed = nkey_seed(base64.b64decode(seeds[f"{service}-nkey-seed"]).decode())
        expected = nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
        assert public[f"NATS_{service.upper()}_PUBLIC_NKEY"] == expected, service
    assert set(re.findall(r"\$(NATS_\w+_PUBLIC_NKEY)", config["nats.conf"])) <= set(public)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_reads_only_its_own_nats_seed(overlay: str, service: str) -> None:
    container = service_container(overlay, service)
    path = Path(env_value(container, "NATS_NKEY_SEED_FILE")["value"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    volumes = {v["name"]: v for v in pod_spec(named(overlay, "Deployment", service))["volumes"]}
    items = volumes[mount["name"]]["secret"]["items"]
    assert items == [{"key": f"{service}-nkey-seed", "path": path.name}]


@pytest.mark.parametrize("statefulset", ["postgres", "timescaledb"])
def test_dev_databases_start_empty_and_the_provisioning_job_makes_the_schema(
    statefulset: str,
) -> None:
    (container,) = pod_spec(named("dev", "StatefulSet", statefulset))["containers"]
    # no init scripts: roles, databases and migrations are the Job's, as compose's provision
    assert not [
        m for m in container["volumeMounts"] if m["mountPath"].startswith("/docker-entrypoint")
    ]
    assert not [c for c in objects("dev", "ConfigMap") if "init" in c["metadata"]["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_provisioning_job_has_every_database_password_and_the_services_only_theirs(
    overlay: str,
) -> None:
    job = named(overlay, "Job", "provision")
    (container,) = pod_spec(job)["containers"]
    assert container["image"] == "gotemp/provision:latest"
    env = {e["name"]: e for e in container["env"]}
    assert set(env) - {"POSTGRES_ADMIN_CONNECT", "TIMESCALEDB_ADMIN_CONNECT"} <= {
        f"{name.upper()}" for name in ProvisionSettings.variables()
    }
    for role in ROLES:
        path = Path(env[f"{role.upper()}_PASSWORD_FILE"]["value"])
        assert path.name == role.replace("_", "-")
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["db-passwords"]["secret"]["secretName"].startswith("gotemp-db-passwords")
    assert volumes["db-admin"]["secret"]["secretName"].startswith("gotemp-db-admin")
    for service, database in ((s.name, s.database) for s in SUITE.with_database):
        role = f"{database.replace('_', '-')}-runtime"
        deployment = named(overlay, "Deployment", service)
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        secret = volumes["db-password"]["secret"]
        assert secret["secretName"].startswith("gotemp-db-passwords")
        assert secret["items"] == [{"key": role, "path": "password"}], service
        variable = DSN_VARIABLES[service].replace("_CONNECT", "_PASSWORD_FILE")
        assert env_value(service_container(overlay, service), variable)["value"] == (
            "/var/run/secrets/gotemp/db/password"
        )
        assert not {v["name"] for v in pod_spec(deployment)["volumes"]} & {"db-admin"}


# --- observability: metrics scraped from the namespace monitoring ---------------------------

MONITORING = "monitoring"
OBSERVED_OVERLAYS = [name for name in OVERLAYS if name.endswith("observability")]


def monitoring_prometheus() -> Endpoint:
    (deployment,) = [d for d in render_monitoring() if d["kind"] == "Deployment"]
    return Endpoint(MONITORING, tuple(sorted(pod_labels(deployment).items())))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_monitoring_prometheus_renders_and_validates(version: str) -> None:
    documents = render_monitoring()
    assert {doc["kind"] for doc in documents} == {"Namespace", "ConfigMap", "Deployment", "Service"}
    for document in documents:
        assert document["metadata"].get("namespace", MONITORING) == MONITORING
        kubernetes_validate.validate(document, version, strict=True)


def test_the_monitoring_prometheus_runs_the_checked_configuration_and_the_project_rules(
    tmp_path: Path,
) -> None:
    (config_map,) = [d for d in render_monitoring() if d["kind"] == "ConfigMap"]
    rules = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert config_map["data"]["alerts.yml"] == rules.read_text()
    for name, text in config_map["data"].items():
        (tmp_path / name).write_text(text)
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH: apt-get install prometheus"
    checked = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (deployment,) = [d for d in render_monitoring() if d["kind"] == "Deployment"]
    (container,) = pod_spec(deployment)["containers"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in container["args"]
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize("overlay", OBSERVED_OVERLAYS)
def test_prometheus_finds_every_pod_of_each_service_on_its_side_port(overlay: str) -> None:
    (config_map,) = [d for d in render_monitoring() if d["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job["dns_sd_configs"] for job in config["scrape_configs"]}
    assert set(jobs) == {*SERVICES, GATEWAY}
    for name in [*SERVICES, GATEWAY]:
        ((sd,),) = [jobs[name]]
        (dns_name,) = sd["names"]
        service_name, namespace = dns_name.split(".")[:2]
        assert namespace == NAMESPACE and sd["type"] == "A"
        service = named(overlay, "Service", service_name)
        # a headless Service listing unready pods too: a pod whose database is down is
        # exactly one to watch
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": name}
        container = service_container(overlay, name)
        (port,) = service["spec"]["ports"]
        assert container_port(container, port["targetPort"]) == sd["port"] == port["port"]
        assert env_value(container, "HTTP_ADDRESS")["value"] == f":{sd['port']}"
        annotations = named(overlay, "Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert annotations["prometheus.io/port"] == str(sd["port"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_prometheus_in_the_monitoring_namespace_reaches_the_side_port(overlay: str) -> None:
    prometheus = monitoring_prometheus()
    stranger = Endpoint(MONITORING, (("app.kubernetes.io/name", "grafana"),))
    elsewhere = Endpoint("default", prometheus.labels)
    # the side ports: the services' "http", the gateway's "metrics" (its "http" is public)
    side_ports = {name: "http" for name in SERVICES} | {GATEWAY: "metrics"}
    for name, side in side_ports.items():
        target = pod(overlay, name)
        port = container_port(service_container(overlay, name), side)
        scraped = allowed(overlay, prometheus, target, port)
        assert scraped == (overlay in OBSERVED_OVERLAYS), (overlay, name)
        for source in (stranger, elsewhere, OUTSIDE, pod(overlay, "user")):
            assert not allowed(overlay, source, target, port), (overlay, name, source)
