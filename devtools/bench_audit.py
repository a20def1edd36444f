"""Audit ingest benchmark (`make bench-audit`): the audit service as its own process on
embedded PostgreSQL and NATS, measured against a bulk COPY into the same table in the same run.

1. COPY ceiling: N audit rows written with COPY (rows/s).
2. Ingest: a burst of N events published to JetStream; time until all are stored (events/s).
3. Lag: changes committed through the outbox (relay included) at a steady rate; for each,
   change committed -> audit row stored (p50/p99).
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
from pathlib import Path

import asyncpg
import nats

from devtools.stack import (
    REPO_ROOT,
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    port_open,
    wait_until,
)
from global_utils.audit import ActionType, AuditEvent, ensure_audit_stream
from global_utils.broker import Broker
from global_utils.db import Database, UnitOfWork
from global_utils.outbox import OutboxAuditEmitter, OutboxRelay
from user.proto import user_pb2

PAYLOAD = user_pb2.User(
    id=1, firstname="Bench", lastname="Mark", email="b@m.co"
).SerializeToString()


def make_event(tag: str) -> AuditEvent:
    return AuditEvent(
        service="bench",
        action_func="AfterCreateUser",
        action_type=ActionType.INSERT,
        object_name="bench",
        object_id=tag,
        performed_by="1",
        payload_type="user.User",
        payload=PAYLOAD,
    )


async def copy_ceiling(dsn: str, n: int) -> float:
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
        )
        for e in (make_event(str(i)) for i in range(n))
    ]
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "audit",
            records=rows,
            columns=[
                "eventid",
                "actiontime",
                "topic",
                "service",
                "actionfunc",
                "actiontype",
                "objectname",
                "objectid",
                "performedby",
                "objectdetail",
                "payloadtype",
            ],
        )
        return n / (time.perf_counter() - started)
    finally:
        await conn.close()


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


async def ingest_burst(nats_address: str, dsn: str, n: int) -> float:
    client = await nats.connect(f"nats://{nats_address}")
    js = client.jetstream()
    await ensure_audit_stream(js)
    events = [make_event(str(i)) for i in range(n)]
    events = [e.model_copy(update={"object_name": "bench-burst"}) for e in events]
    started = time.perf_counter()
    for start in range(0, n, 1000):
        futures = [
            await js.publish_async("Audit", e.payload, headers=e.headers())
            for e in events[start : start + 1000]
        ]
        await asyncio.gather(*futures)
    finished = await wait_count(dsn, "bench-burst", n, timeout=300)
    await client.close()
    return n / (finished - started)


async def lag_at_rate(
    user_dsn: str, audit_dsn: str, nats_address: str, rate: int, seconds: float
) -> dict[str, float]:
    database = Database(user_dsn, max_size=20)
    broker = Broker(f"nats://{nats_address}", name="bench")
    relay = OutboxRelay(database, broker)
    emitter = OutboxAuditEmitter(relay)
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
    pg: EmbeddedPostgres, broker: EmbeddedNats, folder: Path
) -> subprocess.Popen[bytes]:
    port = free_port()
    env = {
        **os.environ,
        "DB_CONNECT": pg.dsn("audit"),
        "MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "MICRO_BROKER_ADDRESS": broker.address,
        "MICRO_REGISTRY": "static",
        "LOG_LEVEL": "WARNING",
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
        pg.apply_all_init_scripts()
        broker = EmbeddedNats(folder / "nats").start()
        audit = start_audit(pg, broker, folder)
        try:
            ceiling = await copy_ceiling(pg.dsn("audit"), n)
            ingest = await ingest_burst(broker.address, pg.dsn("audit"), n)
            lag = await lag_at_rate(
                pg.dsn("appuser"), pg.dsn("audit"), broker.address, rate, seconds
            )
        finally:
            audit.terminate()
            audit.wait(timeout=30)
            broker.stop()
            pg.stop()
    result = {
        "events": n,
        "copy_rows_per_s": round(ceiling),
        "ingest_events_per_s": round(ingest),
        "ingest_vs_copy": round(ingest / ceiling, 3),
        **{k: round(v, 1) for k, v in lag.items()},
        "cpus": os.cpu_count(),
    }
    print(f"{'measure':<34} {'value':>12}")
    print(f"{'bulk COPY ceiling (rows/s)':<34} {result['copy_rows_per_s']:>12}")
    print(f"{'audit ingest, burst (events/s)':<34} {result['ingest_events_per_s']:>12}")
    print(f"{'ingest / COPY':<34} {result['ingest_vs_copy']:>12}")
    print(f"{'changes offered / achieved (/s)':<34} {rate:>5} / {result['achieved_per_s']:>5}")
    print(f"{'change -> row lag p50 (ms)':<34} {result['lag_p50_ms']:>12}")
    print(f"{'change -> row lag p99 (ms)':<34} {result['lag_p99_ms']:>12}")
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
