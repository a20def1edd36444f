"""`make bench` / `make bench-quick`: the suite on embedded PostgreSQL and NATS (the machinery
of `make run`), driven by client processes, each hot path beside its own ceiling measured in
the same run. Prints one table and writes bench/results.json. Never part of `make test`."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import psutil

from devtools import bench_audit
from devtools.loadgen import Result, Target, run_load
from devtools.processes import ServiceProcess
from devtools.run import Service, plan, start_services, stop_all, wait_serving
from devtools.stack import REPO_ROOT, EmbeddedNats, EmbeddedPostgres, free_port
from global_utils.auth import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from user.proto import user_pb2, user_pb2_grpc
from user.server.passwords import default_bcrypt_workers

SEED_HASH = b"$2b$10$Cii1nKCmZ5.MKuDvNZEYKeiGkQ5BoNit43MBEAGmzMSAtod20N3f2"
# One thread hashing at the service's hashing priority, in a process of its own.
BURNER = f"import os, bcrypt\nos.nice(10)\nwhile True: bcrypt.checkpw(b'1234', {SEED_HASH!r})\n"


@contextmanager
def hashing_elsewhere() -> Iterator[None]:
    """A process unrelated to the services hashing at the hashing pool's priority."""
    burner = subprocess.Popen([sys.executable, "-c", BURNER], cwd=REPO_ROOT)
    try:
        time.sleep(2)  # its start-up (imports) would load the CPU too
        yield
    finally:
        burner.kill()
        burner.wait()


def bcrypt_ceiling(seconds: float) -> float:
    """checkpw/s of a cost-10 hash on as many threads (bcrypt runs outside the GIL) as the user
    service has hashing processes."""
    workers = default_bcrypt_workers()
    deadline = time.perf_counter() + seconds
    done = 0

    def work() -> int:
        count = 0
        while time.perf_counter() < deadline:
            bcrypt.checkpw(b"1234", SEED_HASH)
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = sum(pool.map(lambda _: work(), range(workers)))
    return done / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def prepare(user: Service, promotion: Service) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(user.address) as channel:
        users = user_pb2_grpc.UserSrvStub(channel)
        token = (await users.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        me = await users.ValidateToken(user_pb2.Token(token=token))
    promo = promotion_pb2.Promotion(
        name="Bench promo",
        customer_id=3308341401806443521,
        active=True,
        product=[
            promotion_pb2.Product(
                id=7001,
                upc_code="036000291452",
                discount=[
                    promotion_pb2.Discount(value=10, type=1, description="10% off"),
                    promotion_pb2.Discount(value=2, type=2, description="2 off"),
                ],
            ),
            promotion_pb2.Product(
                id=7002,
                upc_code="042100005264",
                discount=[promotion_pb2.Discount(value=25, type=1, description="quarter off")],
            ),
        ],
    )
    promo.valid_from.FromSeconds(946684800)
    promo.valid_thru.FromSeconds(7258118400)
    async with grpc.aio.insecure_channel(promotion.address) as channel:
        reply = await promotion_pb2_grpc.PromotionSrvStub(channel).CreatePromotion(
            promo, metadata=bearer_metadata(token)
        )
    return {"token": token, "user_id": int(me.e_uid), "promotion_id": reply.promotion.id}


def measure(
    name: str, target: Target, pid: int | None, *, concurrency: int, seconds: float, **kw: Any
) -> dict[str, Any]:
    before = cpu_seconds(pid) if pid else 0.0
    result = run_load(target, concurrency=concurrency, seconds=seconds, **kw)
    used = (cpu_seconds(pid) - before) if pid else 0.0
    return row(name, result, concurrency, used)


def row(name: str, result: Result, concurrency: int, cpu: float) -> dict[str, Any]:
    return {
        "name": name,
        "concurrency": concurrency,
        "requests": result.requests,
        "errors": result.errors,
        "rate": round(result.rate, 1),
        "p50_ms": round(result.percentile(0.50) * 1000, 2),
        "p99_ms": round(result.percentile(0.99) * 1000, 2),
        "cpu_ms_per_request": round(cpu * 1000 / result.requests, 3)
        if result.requests and cpu
        else None,
    }


def ready_time(service: Service, log_dir: Path) -> float:
    """Seconds from process start to health SERVING for a fresh instance (database up)."""
    port = free_port()
    env = service.env | {"MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    fresh = Service(service.name, service.module, service.grpc_service, port, env)
    started = time.perf_counter()
    process = ServiceProcess(service.module, env, log_dir / f"{service.name}-ready.log")
    try:
        asyncio.run(wait_serving(fresh, process, timeout=60))
        return time.perf_counter() - started
    finally:
        process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the suite against its ceilings.")
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument("--seconds", type=float, help="duration of each load run")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument(
        "--callers", type=int, default=32, help="concurrent callers for the read paths"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    memory_requests = 20_000 if args.quick else 100_000
    events = 5_000 if args.quick else 20_000
    procs = args.processes
    callers = args.callers
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="gotemp-bench-") as tmp:
        folder = Path(tmp)
        pg = EmbeddedPostgres(folder / "pg").start()
        pg.apply_all_init_scripts()
        broker = EmbeddedNats(folder / "nats").start()
        env = {
            "LOG_LEVEL": "WARNING",
            "MDNS_SERVICE_TYPE": f"_gtb-{uuid.uuid4().hex[:8]}._tcp.local.",
        }
        os.environ.update(
            {k: str(free_port()) for k in ("USER_PORT", "PROMOTION_PORT", "AUDIT_PORT")}
        )
        services = plan(pg, broker, env)
        user, promotion, audit = services
        processes = asyncio.run(start_services(services, folder / "logs"))
        pids = {s.name: p.proc.pid for s, p in zip(services, processes, strict=True)}
        bare_port = free_port()
        bare_cmd = subprocess.Popen(
            [sys.executable, "-m", "devtools.bench_bare", str(bare_port)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            assert (
                bare_cmd.stdout is not None and bare_cmd.stdout.readline().strip() == b"bare ready"
            )
            ids = asyncio.run(prepare(user, promotion))
            token, user_id = ids["token"], ids["user_id"]

            def t(kind: str, service: Service | None = None, **kw: Any) -> Target:
                return Target(
                    kind, service.address if service else f"127.0.0.1:{bare_port}", token, **kw
                )

            ceiling = measure(
                "ceiling: bare grpc.aio",
                t("bare", object_id=user_id),
                bare_cmd.pid,
                concurrency=callers,
                seconds=seconds,
                processes=procs,
            )
            db = measure(
                "ceiling: asyncpg query",
                Target("db", dsn=pg.dsn("appuser"), object_id=user_id),
                None,
                concurrency=callers,
                seconds=seconds,
                processes=procs,
            )
            crypt = bcrypt_ceiling(seconds)

            def bare_four_callers(situation: str) -> dict[str, Any]:
                return measure(
                    f"bare grpc.aio, 4 callers, {situation}",
                    t("bare", object_id=user_id),
                    bare_cmd.pid,
                    concurrency=4,
                    seconds=seconds,
                    processes=1,
                )

            # Control for the p99 target: what the same hashing load does to the transport
            # ceiling itself, a server with no Python work to speak of.
            bare_idle = bare_four_callers("idle")
            with hashing_elsewhere():
                bare_busy = bare_four_callers("unrelated hashing process")
            bare_cmd.terminate()
            bare_cmd.wait(timeout=10)
            rows += [
                ceiling,
                db,
                {"name": "ceiling: bcrypt checkpw (cost 10)", "rate": round(crypt, 1)},
                bare_idle,
                bare_busy,
            ]

            hot_paths = [
                ("GetUserById", t("user_by_id", user, object_id=user_id), "user", callers),
                ("GetUsers (3 seed users)", t("users", user), "user", callers),
                (
                    "GetPromotionById (2 products)",
                    t("promotion_by_id", promotion, object_id=ids["promotion_id"]),
                    "promotion",
                    callers,
                ),
                ("Auth", t("auth", user), "user", 8),
                ("CreateUser", t("create_user", user), "user", 8),
            ]
            by_id, users, promo, auth, create = (
                measure(
                    name, target, pids[owner], concurrency=callers, seconds=seconds, processes=procs
                )
                for name, target, owner, callers in hot_paths
            )

            def four_callers(situation: str) -> dict[str, Any]:
                # The same client shape (one process, 4 callers) in every situation compared.
                return measure(
                    f"GetUserById, 4 callers, {situation}",
                    t("user_by_id", user, object_id=user_id),
                    pids["user"],
                    concurrency=4,
                    seconds=seconds,
                    processes=1,
                )

            idle = four_callers("idle")
            with ThreadPoolExecutor(1) as background:
                # Logins start first and outlast the measurement; the wait covers the start-up
                # of their client process (imports), which would otherwise load the CPU too.
                logins = background.submit(
                    run_load, t("auth", user), concurrency=8, seconds=seconds + 5, processes=1
                )
                time.sleep(3)
                busy = four_callers("8 logins running")
                logins.result()
            # Control: the same CPU load from a process unrelated to the services. If p99 rises
            # as much as under logins, the rise is the machine's, not the service's.
            with hashing_elsewhere():
                control = four_callers("unrelated hashing process")
            rows += [by_id, users, promo, auth, create, idle, busy, control]

            copy = asyncio.run(bench_audit.copy_ceiling(pg.dsn("audit"), events, pg.pid))
            ingest = asyncio.run(
                bench_audit.ingest_burst(
                    broker.address,
                    pg.dsn("audit"),
                    events,
                    {"audit": pids["audit"], "nats": broker.pid, "postgres": pg.pid},
                )
            )
            lag = asyncio.run(
                bench_audit.lag_at_rate(
                    pg.dsn("appuser"), pg.dsn("audit"), broker.address, 1000, seconds
                )
            )
            rows += [
                {
                    "name": "ceiling: bulk COPY into audit",
                    "rate": round(copy["rate"], 1),
                    "cpu_us_per_row": {k: round(v, 1) for k, v in copy.items() if k != "rate"},
                },
                {
                    "name": "audit ingest (burst)",
                    "rate": round(ingest["rate"], 1),
                    "cpu_us_per_event": {k: round(v, 1) for k, v in ingest.items() if k != "rate"},
                },
                {
                    "name": "change -> audit row at 1,000/s",
                    "rate": round(lag["achieved_per_s"], 1),
                    "p50_ms": round(lag["lag_p50_ms"], 1),
                    "p99_ms": round(lag["lag_p99_ms"], 1),
                },
            ]

            memory: dict[str, tuple[float | None, float]] = {}
            for service, kind, object_id in (
                (user, "user_by_id", user_id),
                (promotion, "promotion_by_id", ids["promotion_id"]),
            ):
                readings = []
                for _ in range(2):  # RSS at the half-way mark and at the end
                    run_load(
                        t(kind, service, object_id=object_id),
                        concurrency=callers,
                        seconds=3600,
                        processes=procs,
                        max_requests=memory_requests // 2,
                    )
                    readings.append(round(rss_mb(pids[service.name]), 1))
                memory[service.name] = (readings[0], readings[1])
            memory["audit"] = (None, round(rss_mb(pids["audit"]), 1))
            # The user service's password hashing processes, reported beside it (not in it).
            hashing = sum(rss_mb(c.pid) for c in psutil.Process(pids["user"]).children())
            memory["user's hashing processes"] = (None, round(hashing, 1))
            readiness = {s.name: round(ready_time(s, folder / "logs"), 2) for s in services}
        finally:
            if bare_cmd.poll() is None:
                bare_cmd.terminate()
            stop_all(processes)
            broker.stop()
            pg.stop()

    targets = [
        ("GetUserById ≥ 50% of bare", by_id["rate"] / ceiling["rate"], 0.5),
        ("GetUsers ≥ 40% of bare", users["rate"] / ceiling["rate"], 0.4),
        ("GetPromotionById ≥ 40% of bare", promo["rate"] / ceiling["rate"], 0.4),
        ("Auth ≥ 80% of bcrypt", auth["rate"] / crypt, 0.8),
        ("CreateUser ≥ 80% of bcrypt", create["rate"] / crypt, 0.8),
        ("p99 under logins ≤ 2× idle", idle["p99_ms"] and busy["p99_ms"] / idle["p99_ms"], None),
        (
            "  control: p99 beside an unrelated hasher / idle",
            idle["p99_ms"] and control["p99_ms"] / idle["p99_ms"],
            None,
        ),
        (
            "  control: bare grpc.aio p99 beside the hasher / idle",
            bare_idle["p99_ms"] and bare_busy["p99_ms"] / bare_idle["p99_ms"],
            None,
        ),
        ("audit ingest ≥ 50% of COPY", ingest["rate"] / copy["rate"], 0.5),
    ]
    print(f"\n{'measure':<44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10}")
    for r in rows:
        cells = [r.get("rate", ""), r.get("p50_ms", ""), r.get("p99_ms", "")]
        cpu = r.get("cpu_ms_per_request") or ""
        print(f"{r['name']:<44} {cells[0]:>9} {cells[1]:>8} {cells[2]:>8} {cpu:>10}")
        for unit in ("cpu_us_per_row", "cpu_us_per_event"):
            if unit in r:
                split = ", ".join(f"{k.split('_')[0]} {v}" for k, v in r[unit].items())
                print(f"{'':<4}CPU µs per {unit.rsplit('_', 1)[1]}: {split}")
    print(f"\n{'target':<44} {'ratio':>9}  met")
    verdicts = []
    for name, ratio, goal in targets:
        if name.strip().startswith("control"):
            print(f"{name:<44} {ratio:>9.3f}  (for comparison)")
            extra.setdefault("controls", {})[name.strip()] = round(ratio, 3)
            continue
        met = ratio <= 2 if goal is None else ratio >= goal
        verdicts.append({"target": name, "ratio": round(ratio, 3), "met": bool(met)})
        print(f"{name:<44} {ratio:>9.3f}  {'yes' if met else 'NO'}")
    print(f"\nRSS MB (at {memory_requests // 2:,} / {memory_requests:,} requests): {memory}")
    print(f"ready (process start -> SERVING, database up), s: {readiness}")
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "seconds_per_run": seconds,
        "client_processes": procs,
        "rows": rows,
        "targets": verdicts,
        "rss_mb": memory,
        "ready_seconds": readiness,
        **extra,
    }
    bench_audit.write_json(args.out, results)
    print(f"written to {args.out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
