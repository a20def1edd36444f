"""An embedded NATS as the suite expects it: the repository's configuration with a set of
nkeys, and provisioned (the AUDIT stream and the audit consumer, made with the admin key)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats
from provision.broker import provision_broker


def servers_url(servers: EmbeddedNats | Sequence[EmbeddedNats]) -> str:
    nodes = [servers] if isinstance(servers, EmbeddedNats) else list(servers)
    return ",".join(f"nats://{node.address}" for node in nodes)


def provision(
    servers: EmbeddedNats | Sequence[EmbeddedNats], keys: NatsKeys, **options: Any
) -> str:
    """provision_broker with keys' admin credential, from synchronous code (its own event
    loop, in a thread of its own: the caller may be inside a running loop, e.g. a fixture)."""
    work = provision_broker(servers_url(servers), keys.access("admin"), **options)
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


def start_nats(
    store_dir: Path,
    keys: NatsKeys,
    *,
    port: int | None = None,
    **options: Any,
) -> EmbeddedNats:
    """A started, provisioned server whose users are keys' (options: provision_broker's)."""
    server = EmbeddedNats(store_dir, port, env=keys.server_env()).start()
    provision(server, keys, **options)
    return server
