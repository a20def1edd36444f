"""`python -m devtools.screenshot`: Prometheus's own pages from a real run, for the docs.

Starts the suite as `make run` does (embedded PostgreSQL and NATS, the three services with
their HTTP side ports on free loopback ports), a real Prometheus scraping them
(devtools/prometheus.py), makes some calls, then has headless Chromium take the targets page
and a graph of calls per method: docs/prometheus-targets.png and docs/prometheus-graph.png."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import grpc

from devtools.prometheus import LocalPrometheus
from devtools.run import (
    Service,
    development_nats,
    plan,
    provision,
    start_services,
    stop_all,
)
from devtools.stack import REPO_ROOT, EmbeddedNats, EmbeddedPostgres, free_port
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from user.proto import user_pb2, user_pb2_grpc

DOCS = REPO_ROOT / "docs"
# calls per second of each method called (the zero series of methods not called left out)
GRAPH = (
    "sum by (job, grpc_method, grpc_code) "
    "(rate(grpc_server_handled_total{grpc_type='unary'}[15s])) > 0"
)


def page(prometheus: LocalPrometheus, name: str) -> str:
    """A page of Prometheus's UI: Debian's build serves the classic one, under /classic/."""
    return f"{prometheus.url}/classic/{name}"


async def traffic(user: Service, promotion: Service, seconds: float) -> None:
    """Logins, reads (some of unknown ids) and promotion searches for seconds."""
    async with grpc.aio.insecure_channel(user.address) as channel:
        users = user_pb2_grpc.UserSrvStub(channel)
        token = (await users.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        me = await users.ValidateToken(user_pb2.Token(token=token))
        auth = bearer_metadata(token)
        async with grpc.aio.insecure_channel(promotion.address) as promo_channel:
            promotions = promotion_pb2_grpc.PromotionSrvStub(promo_channel)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await users.GetUserById(user_pb2.SearchId(id=int(me.e_uid)), metadata=auth)
                await promotions.GetPromotions(promotion_pb2.SearchParams(), metadata=auth)
                try:
                    await users.GetUserById(user_pb2.SearchId(id=1), metadata=auth)
                except grpc.aio.AioRpcError:
                    pass  # NotFound, on purpose: it shows as a code of its own
                await asyncio.sleep(0.02)


def screenshot(url: str, out: Path, size: str = "1400,900") -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not on PATH (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size}",
            # the pages are drawn by JavaScript after loading: give it time
            "--virtual-time-budget=15000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(out.relative_to(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of Prometheus from a real run.")
    parser.add_argument("--seconds", type=float, default=90, help="traffic before the shots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gotemp-shot-") as tmp:
        folder = Path(tmp)
        pg = EmbeddedPostgres(folder / "pg").start()
        broker: EmbeddedNats | None = None
        processes = []
        prometheus: LocalPrometheus | None = None
        try:
            broker = development_nats(folder / "nats").start()
            provision(pg, broker)
            # free ports, not goTemp's: a compose stack on this machine may want those
            os.environ.update(
                {k: str(free_port()) for k in ("USER_PORT", "PROMOTION_PORT", "AUDIT_PORT")}
            )
            env = {
                "LOG_LEVEL": "WARNING",
                "MDNS_SERVICE_TYPE": f"_gts-{uuid.uuid4().hex[:8]}._tcp.local.",
            }
            services = plan(pg, broker, env)
            side_ports = {}
            for service in services:
                side_ports[service.name] = free_port()
                service.env["HTTP_ADDRESS"] = f"127.0.0.1:{side_ports[service.name]}"
            processes = asyncio.run(start_services(services, folder / "logs"))
            jobs = {name: [f"127.0.0.1:{port}"] for name, port in side_ports.items()}
            prometheus = LocalPrometheus(folder / "prometheus", jobs).start()
            asyncio.run(traffic(services[0], services[1], args.seconds))
            screenshot(page(prometheus, "targets"), DOCS / "prometheus-targets.png", "1400,700")
            graph = urllib.parse.urlencode(
                {"g0.expr": GRAPH, "g0.tab": "0", "g0.range_input": "2m", "g0.stacked": "0"}
            )
            screenshot(
                f"{page(prometheus, 'graph')}?{graph}", DOCS / "prometheus-graph.png", "1400,1000"
            )
        finally:
            if prometheus is not None:
                prometheus.stop()
            stop_all(processes)
            if broker is not None:
                broker.stop()
            pg.stop()


if __name__ == "__main__":
    main()
