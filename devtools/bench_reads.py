"""The read paths of one source tree, for `make bench-compare`: GetUserById, GetUsers and
GetPromotionById through the real user and promotion services (their interceptors, PostgreSQL)
at full load, each call's server CPU beside its rate; one JSON object written to --out.

bench_compare runs this file with the measured tree first on sys.path, so the suite it starts
(devtools.bench.running_suite), the services, their interceptors and the load generator are
all that tree's code; only this harness is the working tree's, and it calls nothing but what
both trees' devtools.bench and devtools.loadgen offer alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import psutil

from devtools import bench
from devtools.loadgen import Target, run_load

# name: (the load generator's request kind, the service it calls, the object it reads)
READ_PATHS: dict[str, tuple[str, str, str]] = {
    "GetUserById": ("user_by_id", "user", "user_id"),
    "GetUsers": ("users", "user", ""),
    "GetPromotionById": ("promotion_by_id", "promotion", "promotion_id"),
}
PROCESS_MARK = "bench_reads: service "


def service_origin(pid: int) -> dict[str, str]:
    """Where a service process takes its code from: its working directory and the first entry
    of its PYTHONPATH (bench_compare checks both lie in the measured tree)."""
    process = psutil.Process(pid)
    path = process.environ().get("PYTHONPATH", "").split(os.pathsep)[0]
    return {"cwd": process.cwd(), "pythonpath": path}


def measure(
    target: Target, pid: int, callers: int, seconds: float, processes: int
) -> dict[str, Any]:
    """One path at full load: calls/s, the service's CPU µs per call, latencies, errors."""
    before = bench.cpu_seconds(pid)
    result = run_load(target, concurrency=callers, seconds=seconds, processes=processes)
    used = bench.cpu_seconds(pid) - before
    if not result.requests:
        raise RuntimeError(f"{target.kind}: no call succeeded ({result.errors} failed)")
    return {
        "calls_per_s": result.rate,
        "cpu_us_per_call": used * 1e6 / result.requests,
        "p50_ms": result.percentile(0.50) * 1000,
        "p99_ms": result.percentile(0.99) * 1000,
        "calls": result.requests,
        "errors": result.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per path (default 5)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers (32)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (2)")
    parser.add_argument(
        "--warmup-seconds", type=float, default=1.0, help="unmeasured calls per path first (1)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gotemp-bench-reads-") as tmp:
        with bench.running_suite(Path(tmp)) as suite:
            services = {service.name: service for service in suite.services}
            for name in ("user", "promotion"):
                print(f"{PROCESS_MARK}{json.dumps(service_origin(suite.pids[name]))}", flush=True)
            ids = asyncio.run(bench.prepare(suite.user, suite.promotion))
            targets = {
                path: Target(
                    kind,
                    services[owner].address,
                    ids["token"],
                    object_id=ids[object_key] if object_key else 0,
                )
                for path, (kind, owner, object_key) in READ_PATHS.items()
            }
            # Unmeasured first calls: connections, pools and token caches filled.
            for target in targets.values():
                run_load(target, concurrency=4, seconds=args.warmup_seconds, processes=1)
            paths = {
                path: measure(
                    target,
                    suite.pids[READ_PATHS[path][1]],
                    args.callers,
                    args.seconds,
                    args.processes,
                )
                for path, target in targets.items()
            }
    args.out.write_text(json.dumps(paths, indent=2) + "\n")


if __name__ == "__main__":
    main()
