"""Servers the tests start come up although the port picked for them is taken by the time they
bind it (another process on a busy machine got there first): they retry on another port, or
bind a port of the system's choosing and read it back."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import devtools.stack
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats, EmbeddedPostgres, postgres_bin_dir, wait_until


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def first_pick_taken(monkeypatch: pytest.MonkeyPatch, taken_port: int) -> list[int]:
    """devtools.stack.free_port hands out the taken port first, then free ones; the list
    records every port handed out."""
    picks: list[int] = []
    real: Callable[..., int] = devtools.stack.free_port

    def pick(host: str = "127.0.0.1") -> int:
        picks.append(taken_port if not picks else real(host))
        return picks[-1]

    monkeypatch.setattr(devtools.stack, "free_port", pick)
    return picks


def monitor(server: EmbeddedNats, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/{path}") as answer:
        return dict(json.load(answer))


def test_nats_listens_where_it_says_whatever_a_pick_would_have_given(
    stack_dir: Path, nats_keys: NatsKeys, taken_port: int, first_pick_taken: list[int]
) -> None:
    server = EmbeddedNats(stack_dir / f"race-{uuid.uuid4().hex[:6]}", env=nats_keys.server_env())
    server.start()
    try:
        assert server.port not in (0, taken_port)
        varz = monitor(server, "varz")
        assert varz["port"] == server.port
        # a restart keeps the port its clients know
        first = server.port
        server.stop()
        server.start()
        assert server.port == first and monitor(server, "varz")["port"] == first
    finally:
        server.stop()


def test_a_nats_node_whose_picked_route_port_is_taken_moves_and_still_joins(
    stack_dir: Path,
    nats_keys: NatsKeys,
    taken_port: int,
    first_pick_taken: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = EmbeddedNats.cluster(
        stack_dir / f"race-cluster-{uuid.uuid4().hex[:6]}", 2, env=nats_keys.server_env()
    )
    assert first.cluster_port == taken_port
    with caplog.at_level(logging.WARNING, logger="devtools.stack"):
        first.start()
    try:
        second.start()
        assert first.cluster_port != taken_port
        [line] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert f"route port {taken_port} taken, retrying on {first.cluster_port}" in line
        assert "address already in use" in line
        # the second node was told the first's new route port: they are routed
        wait_until(
            lambda: (
                monitor(first, "routez")["num_routes"] != 0
                and monitor(second, "routez")["num_routes"] != 0
            ),
            15,
            "the two nodes routed to each other",
        )
    finally:
        second.stop()
        first.stop()


def test_postgres_whose_picked_port_is_taken_starts_on_another(
    stack_dir: Path,
    taken_port: int,
    first_pick_taken: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = EmbeddedPostgres(stack_dir / f"race-pg-{uuid.uuid4().hex[:6]}", durable=False)
    assert server.port == taken_port
    with caplog.at_level(logging.WARNING, logger="devtools.stack"):
        server.start()
    try:
        assert server.port != taken_port and server.port == first_pick_taken[-1]
        [line] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert f"port {taken_port} taken, retrying on {server.port}" in line
        assert "address already in use" in line.lower()
        answer = subprocess.run(
            [str(postgres_bin_dir() / "psql"), "-X", "-tA", "-h", "127.0.0.1"]
            + ["-p", str(server.port), "-U", "postgres", "-c", "SHOW port"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert answer.stdout.strip() == str(server.port)
    finally:
        server.stop()


def test_postgres_on_a_port_given_to_it_does_not_move(stack_dir: Path, taken_port: int) -> None:
    server = EmbeddedPostgres(stack_dir / f"race-pg-{uuid.uuid4().hex[:6]}", port=taken_port)
    with pytest.raises(devtools.stack.PortTaken, match="(?i)address already in use"):
        server.start()
    assert server.port == taken_port and server.pid is None
