"""`make stack`: embedded PostgreSQL and NATS, provisioned, for services run by hand (data kept
in .run/) until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from devtools.databases import provision_databases, service_db_env
from devtools.dev_secrets import development_nats_keys
from devtools.stack import REPO_ROOT, EmbeddedNats, EmbeddedPostgres, port_open
from devtools.suite import load_suite
from provision.broker import provision_broker


def _preferred_or_any(preferred: int) -> int:
    """preferred while it is free, else 0: a port the server chooses as it binds."""
    return 0 if port_open(preferred) else preferred


def main() -> None:
    """`python -m devtools.stack`: PostgreSQL + NATS for a local run, data kept in .run/."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    run_dir = REPO_ROOT / ".run"
    pg = EmbeddedPostgres(
        run_dir / "pg", port=int(os.environ.get("PG_PORT", 0)) or _preferred_or_any(5432)
    )
    keys = development_nats_keys()
    broker = EmbeddedNats(
        run_dir / "nats",
        port=int(os.environ.get("NATS_PORT", 0)) or _preferred_or_any(4222),
        env=keys.server_env(),
    )
    pg.start()
    try:
        provision_databases(pg)
        broker.start()
        asyncio.run(provision_broker(f"nats://{broker.address}", keys.access("admin")))
        print(f"PostgreSQL on 127.0.0.1:{pg.port}, NATS (JetStream) on {broker.address}")
        suite = load_suite()
        print("In another terminal, start a service: make run-<name> (make run-user, ...).")
        print("It connects as these settings say (make run-<name> sets them when PG_PORT and")
        print("NATS_PORT name the ports above):")
        for service in suite.with_database:
            settings = " ".join(f"{k}={v}" for k, v in service_db_env(pg, service.name).items())
            print(f"  {service.name}: {settings}")
        print(f"  export MICRO_BROKER_ADDRESS={broker.address} MDNS_INTERFACES=127.0.0.1")
        others = ", ".join(f"-{name}" for name in suite.names[1:])
        print(f"  export NATS_NKEY_SEED_FILE={keys.seed_file(suite.names[0])}  # or {others}")
        print("Ctrl-C stops both.", flush=True)
        # Blocked only now, so the servers started above keep their default signal mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
        pg.stop()
        print("stopped")


if __name__ == "__main__":
    main()
