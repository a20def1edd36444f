"""Audit ingest benchmark (`make bench-audit`): the audit service as its own process on
embedded PostgreSQL and NATS, measured against a bulk COPY into the same table in the same run.

1. COPY ceiling: N audit rows written with COPY (rows/s).
2. Ingest: a burst of N events published to JetStream; time until all are stored (events/s).
3. Lag: changes committed through the outbox (relay included) at a steady rate; for each,
   change committed -> audit row stored (p50/p99).
4. Per-event cost of event authentication and the hash chain, in this process: signing (the
   producer), parsing with the MAC input built, verifying the MAC, hashing into the chain.

Events are signed and verified, and stored rows chained, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from audit.server.events.authenticity import EventAuthenticator, ProducerKey
from audit.server.events.chain import GENESIS, chained
from audit.server.events.wire import COLUMNS, header_block, parse_delivery
from devtools.databases import provision_databases, service_db_env
from devtools.dev_secrets import (
    AuditKeys,
    NatsKeys,
    development_keys,
    make_audit_keys,
    make_nats_keys,
)
from devtools.nats_stack import start_nats
from devtools.stack import (
    REPO_ROOT,
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    port_open,
    wait_until,
)
from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import ActionType, AuditEvent, Subject
from global_utils.events.signing import EventSigner
from global_utils.messaging.broker import Broker
from global_utils.messaging.outbox import OutboxAuditEmitter, OutboxRelay
from user.proto import user_pb2

PAYLOAD = user_pb2.User(
    id=1, firstname="Bench", lastname="Mark", email="b@m.co"
).SerializeToString()


def make_event(tag: str) -> AuditEvent:
    return AuditEvent(
        # A producer the audit service knows (it checks the key's service against this).
        service="user",
        action_func="AfterCreateUser",
        action_type=ActionType.INSERT,
        object_name="bench",
        object_id=tag,
        performed_by="1",
        payload_type="user.User",
        payload=PAYLOAD,
    )


async def copy_ceiling(dsn: str, n: int, postgres_pid: int | None = None) -> dict[str, float]:
    """Rows/s of one bulk COPY of n audit rows, and the CPU per row (µs) of the copying client
    and of PostgreSQL."""
    rows = [
        (
            uuid.uuid4(),
            e.action_time,
            "Audit",
            e.service,
            e.action_func,
            e.action_type.value,
            "bench-copy",
            e.object_id,
            e.performed_by,
            e.payload,
            e.payload_type,
            None,  # traceid: an untraced event
        )
        for e in (make_event(str(i)) for i in range(n))
    ]
    conn = await asyncpg.connect(dsn)
    try:
        meter = CpuMeter({"postgres": postgres_pid, "client": os.getpid()})
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "audit",
            records=rows,
            columns=COLUMNS,
        )
        rate = n / (time.perf_counter() - started)
        cpu = meter.used()
    finally:
        await conn.close()
    return {"rate": rate, **{f"{k}_cpu_us_per_row": v / n * 1e6 for k, v in cpu.items()}}


async def count(dsn: str, object_name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM audit WHERE objectname = $1", object_name)
        )
    finally:
        await conn.close()


async def wait_count(dsn: str, object_name: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while (got := await count(dsn, object_name)) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {got} of {n} rows stored")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def development_signer() -> EventSigner:
    """The user service's development key (secrets/dev/), which `make run`'s audit knows."""
    keys = development_keys()
    return EventSigner(keys.key_id("user"), keys.key("user").encode())


def per_event_costs(signer: EventSigner, key: bytes, n: int) -> dict[str, float]:
    """µs per event of signing, parsing (with the MAC input), verifying and chaining."""
    events = [make_event(str(i)) for i in range(n)]
    headers = [e.headers() for e in events]
    started = time.perf_counter()
    signed = [signer.sign(h, e.payload) for h, e in zip(headers, events, strict=True)]
    sign = time.perf_counter() - started
    blocks = [header_block(h) for h in signed]
    started = time.perf_counter()
    parsed = [parse_delivery(b, e.payload) for b, e in zip(blocks, events, strict=True)]
    parse = time.perf_counter() - started
    check = EventAuthenticator({signer.key_id: ProducerKey("user", key)}).check
    started = time.perf_counter()
    refused = [r for event, seal in parsed if (r := check(event, seal)) is not None]
    verify = time.perf_counter() - started
    assert not refused, refused[:1]
    started = time.perf_counter()
    chained([event for event, _ in parsed], 1, 0, GENESIS, datetime.now(UTC))
    chain = time.perf_counter() - started
    return {
        "sign_us_per_event": sign / n * 1e6,
        "parse_us_per_event": parse / n * 1e6,
        "verify_us_per_event": verify / n * 1e6,
        "chain_hash_us_per_event": chain / n * 1e6,
    }


async def ingest_burst(
    nats_address: str,
    dsn: str,
    n: int,
    pids: Mapping[str, int | None] | None = None,
    signer: EventSigner | None = None,
    *,
    nats_keys: NatsKeys,
) -> dict[str, float]:
    """Writes n events to the Audit subject at once; returns events/s from the first byte sent
    until the last batch was stored (its insert's start, the table's recordedtime), and the
    CPU each process in pids (with its children) spent per event meanwhile (µs).

    The burst goes out as pre-built protocol frames over a plain socket, so the publishing
    client costs next to no CPU: the rate is the consumer's (and the servers'), not a Python
    publisher's."""
    events = [
        make_event(str(i)).model_copy(update={"object_name": "bench-burst"}) for i in range(n)
    ]
    sign = (signer or development_signer()).sign
    frames = b"".join(
        _hpub(Subject.AUDIT.value, sign(e.headers(), e.payload), e.payload) for e in events
    )
    host, port = nats_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    # A producer's credential (the stream was provisioned with the admin's)
    writer.write(nats_keys.connect_frame("user", await reader.readline()) + b"PING\r\n")
    await _until_pong(reader)
    meter = CpuMeter(pids or {})
    started = time.time()
    writer.write(frames + b"PING\r\n")
    await writer.drain()
    await _until_pong(reader)
    writer.close()
    conn = await asyncpg.connect(dsn)
    try:
        # Cheap to ask (one index probe) until the last event is in; then the exact count.
        last = events[-1].object_id
        deadline = time.monotonic() + 300
        while not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE objectname = 'bench-burst'"
            " AND objectid = $1)",
            last,
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the burst was not stored within 300 s")
            await asyncio.sleep(0.02)
        cpu = meter.used()
        await wait_count(dsn, "bench-burst", n, timeout=300)
        stored_until = await conn.fetchval(
            "SELECT extract(epoch FROM max(recordedtime)) FROM audit"
            " WHERE objectname = 'bench-burst'"
        )
    finally:
        await conn.close()
    return {
        "rate": n / (float(stored_until) - started),
        **{f"{name}_cpu_us_per_event": seconds / n * 1e6 for name, seconds in cpu.items()},
    }


class CpuMeter:
    """CPU seconds (user + system) that named processes and their children use from now."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._processes = {
            name: psutil.Process(pid) for name, pid in pids.items() if pid is not None
        }
        self._start = {name: self._seconds(p) for name, p in self._processes.items()}

    def used(self) -> dict[str, float]:
        return {name: self._seconds(p) - self._start[name] for name, p in self._processes.items()}

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        total = 0.0
        for each in [process, *process.children(recursive=True)]:
            try:
                times = each.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total


def _hpub(subject: str, headers: Mapping[str, str], payload: bytes) -> bytes:
    block = header_block(headers)
    total = len(block) + len(payload)
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(block), total, block, payload)


async def _until_pong(reader: asyncio.StreamReader) -> None:
    while (line := await reader.readline()) != b"PONG\r\n":
        if not line or line.startswith(b"-ERR"):
            raise RuntimeError(f"NATS refused the burst: {line!r}")


async def lag_at_rate(
    user_dsn: str,
    audit_dsn: str,
    nats_address: str,
    rate: int,
    seconds: float,
    signer: EventSigner | None = None,
    *,
    nats_keys: NatsKeys,
) -> dict[str, float]:
    database = Database(user_dsn, max_size=20)
    broker = Broker(f"nats://{nats_address}", name="bench", access=nats_keys.access("user"))
    relay = OutboxRelay(database, broker)
    emitter = OutboxAuditEmitter(signer or development_signer(), relay)
    for part in (database, broker, relay):
        await part.start()
    await database.wait_ready()
    await broker.wait_connected()
    committed: dict[str, float] = {}
    total = int(rate * seconds)
    interval = 1.0 / rate
    started = time.perf_counter()

    async def change(i: int) -> None:
        tag = f"lag-{i}"
        async with UnitOfWork(database, emitter) as uow:
            uow.emit(make_event(tag).model_copy(update={"object_name": "bench-lag"}))
            await uow.commit()
        committed[tag] = time.time()

    tasks = []
    for i in range(total):
        delay = started + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(change(i)))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - started)
    await wait_count(audit_dsn, "bench-lag", total, timeout=120)
    conn = await asyncpg.connect(audit_dsn)
    try:
        rows = await conn.fetch(
            "SELECT objectid, extract(epoch FROM recordedtime) AS stored FROM audit"
            " WHERE objectname = 'bench-lag'"
        )
    finally:
        await conn.close()
    lags = sorted(float(r["stored"]) - committed[r["objectid"]] for r in rows)
    for part in (relay, broker, database):
        await part.stop()
    return {
        "offered_per_s": rate,
        "achieved_per_s": achieved,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000,
    }


def start_audit(
    pg: EmbeddedPostgres,
    broker: EmbeddedNats,
    folder: Path,
    keys: AuditKeys,
    nats_keys: NatsKeys,
) -> subprocess.Popen[bytes]:
    port = free_port()
    env = {
        **os.environ,
        **service_db_env(pg, "audit"),
        "MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "MICRO_BROKER_ADDRESS": broker.address,
        "MICRO_REGISTRY": "static",
        "LOG_LEVEL": "WARNING",
        **keys.consumer_env(),
        **nats_keys.client_env("audit"),
    }
    log = open(folder / "audit.log", "wb")  # noqa: SIM115 - closed when the process ends
    command = os.environ.get("BENCH_AUDIT_WRAPPER", "").split() + [
        sys.executable,
        "-m",
        "audit.server",
    ]
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: port_open(port), 30, "the audit service")
    return proc


async def main(n: int, rate: int, seconds: float, out: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gotemp-bench-audit-") as tmp:
        folder = Path(tmp)
        pg = EmbeddedPostgres(folder / "pg").start()
        provision_databases(pg)
        nats_keys = make_nats_keys(folder / "nats-keys")
        broker = start_nats(folder / "nats", nats_keys)
        keys = make_audit_keys(folder / "keys", ("user",))
        signing_key = keys.key("user").encode()
        signer = EventSigner(keys.key_id("user"), signing_key)
        costs = per_event_costs(signer, signing_key, n)
        audit = start_audit(pg, broker, folder, keys, nats_keys)
        try:
            ceiling = await copy_ceiling(pg.dsn("audit"), n, pg.pid)
            ingest = await ingest_burst(
                broker.address,
                pg.dsn("audit"),
                n,
                {"audit": audit.pid, "nats": broker.pid, "postgres": pg.pid},
                signer,
                nats_keys=nats_keys,
            )
            lag = await lag_at_rate(
                pg.dsn("appuser"),
                pg.dsn("audit"),
                broker.address,
                rate,
                seconds,
                signer,
                nats_keys=nats_keys,
            )
        finally:
            audit.terminate()
            audit.wait(timeout=30)
            broker.stop()
            pg.stop()
    result = {
        "events": n,
        "copy_rows_per_s": round(ceiling["rate"]),
        "ingest_events_per_s": round(ingest["rate"]),
        "ingest_vs_copy": round(ingest["rate"] / ceiling["rate"], 3),
        **{k: round(v, 1) for k, v in ceiling.items() if k != "rate"},
        **{k: round(v, 1) for k, v in ingest.items() if k != "rate"},
        **{k: round(v, 1) for k, v in lag.items()},
        **{k: round(v, 2) for k, v in costs.items()},
        "cpus": os.cpu_count(),
    }
    print(f"{'measure':<40} {'value':>12}")
    for label, key in (
        ("bulk COPY ceiling (rows/s)", "copy_rows_per_s"),
        ("  CPU per row: copying client (µs)", "client_cpu_us_per_row"),
        ("  CPU per row: PostgreSQL (µs)", "postgres_cpu_us_per_row"),
        ("audit ingest, burst (events/s)", "ingest_events_per_s"),
        ("  CPU per event: audit service (µs)", "audit_cpu_us_per_event"),
        ("  CPU per event: NATS server (µs)", "nats_cpu_us_per_event"),
        ("  CPU per event: PostgreSQL (µs)", "postgres_cpu_us_per_event"),
        ("ingest / COPY", "ingest_vs_copy"),
        (f"changes achieved at {rate}/s offered", "achieved_per_s"),
        ("change -> row lag p50 (ms)", "lag_p50_ms"),
        ("change -> row lag p99 (ms)", "lag_p99_ms"),
        ("per event: sign, producer (µs)", "sign_us_per_event"),
        ("per event: parse + MAC input (µs)", "parse_us_per_event"),
        ("per event: verify MAC (µs)", "verify_us_per_event"),
        ("per event: chain hash (µs)", "chain_hash_us_per_event"),
    ):
        print(f"{label:<40} {result[key]:>12}")
    if out is not None:
        write_json(out, result)


def write_json(path: Path, data: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "audit-results.json")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rate, args.seconds, args.out))
