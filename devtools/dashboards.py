"""Grafana dashboards as code: one per service of the suite (suite.toml) and one for the audit
pipeline, written to deploy/grafana/dashboards/ by `make generate` (devtools/generate.py; the
drift test checks the committed files are what it writes, and a test that every metric they
query is one the services export). JSON has no comments: each file says it is generated in a
top-level "__generated__" key, which Grafana keeps and ignores."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from devtools.stack import REPO_ROOT
from devtools.suite import Service, Suite, load_suite

DASHBOARD_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
# The provisioned Prometheus data source (deploy/grafana/provisioning/datasources).
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
SERVER_ERRORS = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[tuple[str, list[Panel]]] = field(default_factory=list)

    def model(self, generated: str = "") -> dict[str, Any]:
        panels: list[dict[str, Any]] = []
        y = 0
        next_id = 1
        for row_title, row_panels in self.rows:
            panels.append(
                {
                    "type": "row",
                    "id": next_id,
                    "title": row_title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            next_id += 1
            y += 1
            width = 24 // max(1, min(len(row_panels), 3))
            for index, panel in enumerate(row_panels):
                x = (index % 3) * width
                if index and index % 3 == 0:
                    y += 8
                panels.append(_timeseries(panel, next_id, {"h": 8, "w": width, "x": x, "y": y}))
                next_id += 1
            y += 8
        return {
            **({"__generated__": generated} if generated else {}),
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["gotemp"],
            "timezone": "browser",
            "editable": True,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": []},
            "annotations": {"list": []},
            "panels": panels,
        }


def _timeseries(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "id": panel_id,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def rpc_panels(job: str) -> list[Panel]:
    unary = f'job="{job}", grpc_type="unary"'
    return [
        Panel(
            "Calls per second by method",
            [(f"sum by (grpc_method) (rate(grpc_server_handled_total{{{unary}}}[{RATE}]))", "")],
            "reqps",
        ),
        Panel(
            "Latency by method (p50, p99)",
            [
                (
                    f"histogram_quantile({q}, sum by (le, grpc_method) "
                    f"(rate(grpc_server_handling_seconds_bucket{{{unary}}}[{RATE}])))",
                    f"{{{{grpc_method}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.99)
            ],
            "s",
        ),
        Panel(
            "Answers other than OK, by code",
            [
                (
                    "sum by (grpc_code) (rate(grpc_server_handled_total"
                    f'{{{unary}, grpc_code!="OK"}}[{RATE}]))',
                    "{{grpc_code}}",
                )
            ],
            "reqps",
            "Callers' mistakes (NotFound, InvalidArgument, Unauthenticated) as well as failures.",
        ),
        Panel(
            "Server error ratio (the GotempHighErrorRatio alert)",
            [
                (
                    f"sum(rate(grpc_server_handled_total{{{unary}, grpc_code=~"
                    f'"{SERVER_ERRORS}"}}[{RATE}])) / '
                    f"sum(rate(grpc_server_handled_total{{{unary}}}[{RATE}]))",
                    "errors / calls",
                )
            ],
            "percentunit",
        ),
        Panel(
            "Streams open (health Watch)",
            [
                (
                    f'sum(grpc_server_started_total{{job="{job}", grpc_type="server_stream"}})'
                    f' - sum(grpc_server_handled_total{{job="{job}", grpc_type="server_stream"}})',
                    "open streams",
                )
            ],
        ),
    ]


def process_panels(job: str) -> list[Panel]:
    return [
        Panel("Instances up", [(f'up{{job="{job}"}}', "{{instance}}")]),
        Panel(
            "CPU per instance",
            [(f'rate(process_cpu_seconds_total{{job="{job}"}}[{RATE}])', "{{instance}}")],
            "percentunit",
        ),
        Panel(
            "Memory per instance (RSS)",
            [(f'process_resident_memory_bytes{{job="{job}"}}', "{{instance}}")],
            "bytes",
        ),
    ]


def pool_panels(job: str) -> list[Panel]:
    return [
        Panel(
            "Database pool",
            [
                (f'sum(gotemp_db_pool_in_use{{job="{job}"}})', "in use"),
                (f'sum(gotemp_db_pool_idle{{job="{job}"}})', "idle"),
                (f'sum(gotemp_db_pool_max_size{{job="{job}"}})', "max"),
            ],
        ),
        Panel(
            "Token cache hit ratio",
            [
                (
                    f'sum(rate(gotemp_token_cache_hits_total{{job="{job}"}}[{RATE}])) / ('
                    f'sum(rate(gotemp_token_cache_hits_total{{job="{job}"}}[{RATE}])) + '
                    f'sum(rate(gotemp_token_cache_misses_total{{job="{job}"}}[{RATE}])))',
                    "hits / lookups",
                )
            ],
            "percentunit",
        ),
    ]


def outbox_panels(job: str) -> list[Panel]:
    return [
        Panel(
            "Outbox backlog",
            [(f'max(gotemp_outbox_pending_events{{job="{job}"}})', "events not yet published")],
        ),
        Panel(
            "Oldest unpublished event",
            [(f'max(gotemp_outbox_oldest_pending_age_seconds{{job="{job}"}})', "age")],
            "s",
        ),
        Panel(
            "Events published",
            [(f'sum(rate(gotemp_outbox_published_events_total{{job="{job}"}}[{RATE}]))', "")],
            "ops",
        ),
    ]


def user_client_panels(job: str, issuer: Service) -> list[Panel]:
    """job's calls to the token issuer (the user service)."""
    calls = f'job="{job}", grpc_service="{issuer.grpc_service}"'
    return [
        Panel(
            f"Calls to the {issuer.name} service, by method and code",
            [
                (
                    f"sum by (grpc_method, grpc_code) "
                    f"(rate(grpc_client_handled_total{{{calls}}}[{RATE}]))",
                    "{{grpc_method}} {{grpc_code}}",
                )
            ],
            "reqps",
            "Token verification: GetPublicKeys (local) or ValidateToken (remote).",
        ),
        Panel(
            f"Latency of calls to the {issuer.name} service (p99)",
            [
                (
                    "histogram_quantile(0.99, sum by (le, grpc_method) "
                    f"(rate(grpc_client_handling_seconds_bucket{{{calls}}}[{RATE}])))",
                    "{{grpc_method}}",
                )
            ],
            "s",
        ),
    ]


def resource_panels(service: Service) -> list[Panel]:
    """Its database pool (if it has a database) and its token cache."""
    pool, tokens = pool_panels(service.name)
    return [pool, tokens] if service.has_database else [tokens]


def service_dashboard(
    job: str, grpc_service: str, extra: list[tuple[str, list[Panel]]], resources: list[Panel]
) -> Dashboard:
    return Dashboard(
        uid=f"gotemp-{job}",
        title=f"goTemp {job} service",
        description=f"{grpc_service}: calls, latency, errors, pool and process (job {job}).",
        rows=[
            (f"gRPC ({grpc_service})", rpc_panels(job)),
            ("Process", process_panels(job)),
            ("Resources", resources),
            *extra,
        ],
    )


def audit_pipeline(consumer: str) -> Dashboard:
    return Dashboard(
        uid="gotemp-audit-pipeline",
        title="goTemp audit pipeline",
        description="A change's audit event from the producers' outboxes through JetStream to "
        "the audit table.",
        rows=[
            (
                "Producers' outboxes",
                [
                    Panel(
                        "Backlog by service",
                        [("max by (job) (gotemp_outbox_pending_events)", "{{job}}")],
                    ),
                    Panel(
                        "Oldest unpublished event by service",
                        [("max by (job) (gotemp_outbox_oldest_pending_age_seconds)", "{{job}}")],
                        "s",
                    ),
                    Panel(
                        "Published per second by service",
                        [
                            (
                                "sum by (job) "
                                f"(rate(gotemp_outbox_published_events_total[{RATE}]))",
                                "{{job}}",
                            )
                        ],
                        "ops",
                    ),
                ],
            ),
            (
                "Audit consumer",
                [
                    Panel(
                        "Waiting in JetStream",
                        [
                            ("max(gotemp_audit_consumer_pending_events)", "not yet delivered"),
                            ("max(gotemp_audit_consumer_ack_pending_events)", "delivered, unacked"),
                        ],
                    ),
                    Panel(
                        "Stored per second",
                        [(f"sum(rate(gotemp_audit_events_stored_total[{RATE}]))", "rows")],
                        "ops",
                    ),
                    Panel(
                        "Rejected events by kind (last hour)",
                        [
                            (
                                "sum by (kind) (increase(gotemp_audit_events_rejected_total[1h]))",
                                "{{kind}}",
                            )
                        ],
                        description="Terminated deliveries, kept in audit_rejects: altered or "
                        "unauthenticated ones mean someone wrote to the AUDIT stream.",
                    ),
                ],
            ),
            (
                "Reading the history",
                [
                    Panel(
                        "Audit API calls by method",
                        [
                            (
                                "sum by (grpc_method) (rate(grpc_server_handled_total"
                                f'{{job="{consumer}", grpc_type="unary"}}[{RATE}]))',
                                "{{grpc_method}}",
                            )
                        ],
                        "reqps",
                    )
                ],
            ),
        ],
    )


# Rows only one service has (its own metrics), after the rows the suite gives it.
def own_rows(service: Service) -> list[tuple[str, list[Panel]]]:
    if service.name != "user":
        return []
    return [
        (
            "Password hashing",
            [
                Panel(
                    "bcrypt queue",
                    [
                        ('sum(gotemp_bcrypt_in_flight{job="user"})', "being hashed"),
                        ('sum(gotemp_bcrypt_queued{job="user"})', "waiting for a process"),
                        ('sum(gotemp_bcrypt_workers{job="user"})', "hashing processes"),
                    ],
                )
            ],
        )
    ]


def suite_rows(suite: Suite, service: Service) -> list[tuple[str, list[Panel]]]:
    """The rows its place in the suite gives it: its outbox if it produces audit events, its
    token checks if it calls the token issuer."""
    rows: list[tuple[str, list[Panel]]] = []
    if service.produces_audit:
        rows.append(("Audit outbox", outbox_panels(service.name)))
    issuer = suite.token_issuer
    if issuer.name in service.calls:
        rows.append(("Token checks", user_client_panels(service.name, issuer)))
    return rows


def dashboards(suite: Suite | None = None) -> dict[str, Dashboard]:
    """Every dashboard, by file name."""
    suite = load_suite() if suite is None else suite
    boards = {
        f"{service.name}.json": service_dashboard(
            service.name,
            service.grpc_service,
            [*suite_rows(suite, service), *own_rows(service)],
            resource_panels(service),
        )
        for service in suite.services
    }
    if suite.consumer is not None:
        boards["audit-pipeline.json"] = audit_pipeline(suite.consumer.name)
    return boards


def rendered(suite: Suite | None = None, generated: str = "") -> dict[str, str]:
    """Every dashboard's JSON, by file name (generated: the "__generated__" sentence)."""
    return {
        name: json.dumps(board.model(generated), indent=2) + "\n"
        for name, board in dashboards(suite).items()
    }


# --- the metric names a PromQL expression reads ----------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "le"}


def metric_names(expr: str) -> set[str]:
    """The metric names expr selects (function names, label names, keywords, strings,
    durations and Grafana variables left out)."""
    text = _STRING.sub("", expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGE.sub("", text)
    text = re.sub(r"\$\w+", "", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def dashboard_queries(model: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in model["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
