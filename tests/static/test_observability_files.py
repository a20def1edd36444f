"""The compose profile `observability` as files: Grafana and Jaeger do not run on this machine,
so their provisioning is checked here (it parses, the dashboards are the generated ones and
name provisioned data sources); Prometheus's configuration scrapes every service's side port
under the job names the rules and dashboards use. (That every queried metric is exported is
checked against a real scrape: tests/integration/test_prometheus.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from devtools import dashboards, generate
from devtools.stack import REPO_ROOT
from devtools.suite import load_suite
from tests.static.test_deploy_files import compose_cmd, read_env

GRAFANA = REPO_ROOT / "deploy" / "grafana"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
# compose service -> (scrape job, the service's own env file)
SUITE = load_suite()
SCRAPED = {
    service.server: (service.name, REPO_ROOT / service.name / "docker-compose.env")
    for service in SUITE.services
}
OBSERVABILITY = {"prometheus", "grafana", "jaeger"}


def observability_model() -> dict[str, Any]:
    result = compose_cmd("--profile", "observability", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    written = {path.name: path.read_text() for path in dashboards.DASHBOARD_DIR.glob("*.json")}
    expected = {
        Path(path).name: text
        for path, text in generate.rendered().items()
        if path.startswith(generate.DASHBOARDS)
    }
    assert written == expected, "run make generate"


def test_a_dashboard_per_service_and_one_for_the_audit_pipeline() -> None:
    models = [json.loads(text) for text in dashboards.rendered().values()]
    uids = [model["uid"] for model in models]
    assert sorted(uids) == sorted(
        [*(f"gotemp-{name}" for name in SUITE.names), "gotemp-audit-pipeline"]
    )
    for model in models:
        panels = [p for p in model["panels"] if p["type"] != "row"]
        assert panels, model["uid"]
        assert len({p["id"] for p in model["panels"]}) == len(model["panels"])
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (model["uid"], panel["title"])
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])


def test_dashboards_name_only_provisioned_data_sources() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    sources = {source["uid"]: source for source in provisioned["datasources"]}
    assert sources["prometheus"]["type"] == "prometheus"
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["jaeger"]["type"] == "jaeger"
    for text in dashboards.rendered().values():
        for panel in json.loads(text)["panels"]:
            for ref in [
                panel.get("datasource"),
                *(t["datasource"] for t in panel.get("targets", [])),
            ]:
                if ref is not None:
                    assert ref["uid"] in sources and ref["type"] == sources[ref["uid"]]["type"]


def test_the_dashboard_provider_loads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )["providers"][0]
    grafana = observability_model()["services"]["grafana"]
    mounts = {Path(v["source"]).resolve(): v["target"] for v in grafana["volumes"]}
    assert mounts[dashboards.DASHBOARD_DIR.resolve()] == provider["options"]["path"]
    assert mounts[(GRAFANA / "provisioning").resolve()] == "/etc/grafana/provisioning"


def test_prometheus_scrapes_each_services_side_port_under_its_job_name() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    for service, (job, env_file) in SCRAPED.items():
        port = read_env(env_file)["HTTP_ADDRESS"].rsplit(":", 1)[1]
        assert jobs[job] == [f"{service}:{port}"]
    assert config["rule_files"] == ["alerts.yml"]
    prometheus = observability_model()["services"]["prometheus"]
    mounts = {Path(v["source"]).resolve(): v["target"] for v in prometheus["volumes"]}
    assert mounts[PROMETHEUS.parent.resolve()] == "/etc/prometheus"


def test_observability_runs_only_in_its_profile_and_publishes_its_uis_on_loopback() -> None:
    services = observability_model()["services"]
    plain = compose_cmd("config", "--services").stdout.split()
    assert not OBSERVABILITY & set(plain)
    published = {}
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"]
        for port in services[name].get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
            published[name] = int(port["published"])
    assert published == {"prometheus": 9090, "grafana": 3000, "jaeger": 16686}
    # the services' side ports are scraped on the compose network, never published
    for service in SCRAPED:
        assert all(p["target"] != 8080 for p in services[service].get("ports", []))
