"""Small shared test helpers (no fixtures)."""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import grpc
from prometheus_client.parser import text_string_to_metric_families
from pydantic_settings import BaseSettings

from audit.server.events.wire import parse_header_block
from devtools.paths import REPO_ROOT
from devtools.suite import load_suite
from global_utils.events.audit_event import AuditHeader
from global_utils.events.envelope import decode as decode_envelope
from global_utils.grpc.host import ServiceHost
from global_utils.observability.metrics import METRICS_PATH
from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2
from user.proto import user_pb2


async def http_get(port: int, path: str) -> tuple[str, bytes]:
    """GET path from a service's HTTP side port on 127.0.0.1: (status line, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(host: ServiceHost) -> Samples:
    """host's metrics, read from its HTTP side port."""
    assert host.http is not None and host.http.endpoint is not None
    status, body = await http_get(host.http.endpoint.port, METRICS_PATH)
    assert status == "HTTP/1.1 200 OK", status
    return parse_metrics(body.decode())


def parse_metrics(text: str) -> Samples:
    """A Prometheus text exposition as {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_once_handled(host: ServiceHost, calls: int, **labels: str) -> Samples:
    """host's metrics once `calls` calls matching labels are counted as handled (any code): a
    server counts a call after its reply has left, so its client may read the reply first."""
    got: Samples = {}

    async def counted() -> bool:
        nonlocal got
        got = await scrape(host)
        return handled(got, **labels) >= calls

    await eventually(counted, what=f"{calls} calls counted as handled")
    return got


def handled(samples: Samples, **labels: str) -> float:
    """Calls counted by grpc_server_handled_total with labels, whatever their code."""
    wanted = set(labels.items())
    return sum(
        value
        for (name, have), value in samples.items()
        if name == "grpc_server_handled_total" and wanted <= have
    )


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample called name with exactly labels, or None."""
    return samples.get((name, frozenset(labels.items())))


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = ""
) -> None:
    """Awaits check until it returns True; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def new_user(**overrides: object) -> user_pb2.User:
    """A valid user with a unique email."""
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, Any] = {
        "firstname": "Test",
        "lastname": "User",
        "email": f"t-{uuid.uuid4().hex[:10]}@example.com",
        "pwd": "s3cret-pw",
        "company": "TestCo",
        "active": False,
        "valid_from": to_timestamp(now - timedelta(days=1)),
        "valid_thru": to_timestamp(now + timedelta(days=30)),
    }
    fields.update(overrides)
    return user_pb2.User(**fields)


def new_promotion(**overrides: object) -> promotion_pb2.Promotion:
    """A valid promotion with two products and their discounts."""
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, Any] = {
        "name": f"Promo-{uuid.uuid4().hex[:8]}",
        "description": "test promotion",
        "customer_id": 3308341401806443521,
        "active": True,
        "valid_from": to_timestamp(now - timedelta(days=1)),
        "valid_thru": to_timestamp(now + timedelta(days=30)),
        "product": [
            promotion_pb2.Product(
                id=2001,
                upc_code="036000291452",
                discount=[
                    promotion_pb2.Discount(value=10.5, type=1, description="10.5% off"),
                    promotion_pb2.Discount(id=77, value=3.25, type=2, description="3.25 off"),
                ],
            ),
            promotion_pb2.Product(
                id=2002,
                upc_code="042100005264",
                discount=[promotion_pb2.Discount(value=25, type=1, description="quarter off")],
            ),
        ],
    }
    fields.update(overrides)
    return promotion_pb2.Promotion(**fields)


async def started(host: ServiceHost) -> ServiceHost:
    """host, started and SERVING (the caller stops it)."""
    await host.start()
    await host.ready.wait()
    return host


@asynccontextmanager
async def serving(host: ServiceHost) -> AsyncIterator[grpc.aio.Channel]:
    """Starts host, waits until it is SERVING, yields a channel to it; stops it afterwards."""
    await host.start()
    try:
        await host.ready.wait()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            yield channel
    finally:
        await host.stop()


def settings_class(service: str) -> type[BaseSettings]:
    """The settings class of a service of the suite: <name>.server.settings.<Name>Settings."""
    module = importlib.import_module(f"{service}.server.settings")
    return cast(type[BaseSettings], getattr(module, f"{service.capitalize()}Settings"))


def chromium_path() -> str:
    """Debian's chromium, which the browser checks drive by its path (.ci/run installs it;
    CHROMIUM names another)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    assert found, "chromium is not installed: apt-get install chromium (as .ci/run does)"
    return found


def spare_names(*wanted: str) -> tuple[str, ...]:
    """The names a test grows a copy of the suite by, each made free (an x appended while
    suite.toml or a folder of the repository has it): after `make new-service NAME=widget` the
    tests that add a throwaway widget still add one of their own."""
    taken = {*load_suite().names}
    names: list[str] = []
    for name in wanted:
        while name in taken or (REPO_ROOT / name).exists():
            name += "x"
        taken.add(name)
        names.append(name)
    return tuple(names)


class AuditMessage(Protocol):
    """What a NATS message on Audit offers (nats-py's Msg)."""

    @property
    def headers(self) -> dict[str, str] | None: ...

    @property
    def data(self) -> bytes: ...


def audit_events_of(message: AuditMessage) -> list[tuple[dict[str, str], bytes]]:
    """The events (headers, payload) a message on Audit holds: itself, or an envelope's, in
    their order (global_utils/events/envelope.py)."""
    headers = message.headers or {}
    if AuditHeader.ENVELOPE.value not in headers:
        return [(headers, message.data)]
    return [(parse_header_block(block), data) for block, data in decode_envelope(message.data)]
