"""A steady stream of changes while PostgreSQL, NATS and the services fail at random instants:
no call answers INTERNAL or UNKNOWN, every change is in its database exactly as its answer
allows with exactly one audit row, everything serves again on its own, nothing leaks. At the
end, every event that travelled through the stream (a message of its own or one of an
envelope's, re-sent or redelivered after a crash) is exactly one audit row, and envelopes
carried some of them.

The schedule comes from a seed printed in the report; FAULT_SEED=<seed> replays it, and
FAULT_ROUNDS changes the number of rounds (30 by default)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter

import grpc
import pytest

from tests.faults.chaos import (
    INJECT,
    SEED_EMAIL,
    SEED_PASSWORD,
    Fault,
    Ledger,
    Stack,
    Travelled,
    Workload,
    measure,
    new_seed,
    rebase,
    report,
    resource_problems,
    schedule,
    settled_changes,
    settled_resources,
    stored_once,
    time_to_serve,
    travelled,
)
from tests.faults.conftest import REPORT
from tests.helpers import eventually
from user.proto import user_pb2, user_pb2_grpc

LOAD_SECONDS = 2.5  # each round's stream lasts at least this long
AFTER_RECOVERY_SECONDS = 1.0  # and goes on this long once everything serves again


async def login(stack: Stack) -> str:
    async with grpc.aio.insecure_channel(stack.address("user")) as channel:
        reply = await user_pb2_grpc.UserSrvStub(channel).Auth(
            user_pb2.User(email=SEED_EMAIL, pwd=SEED_PASSWORD), timeout=10
        )
    return str(reply.token)


def dead_services(stack: Stack) -> list[str]:
    return [
        f"{name} exited {p.proc.returncode}:\n{p.output[-3000:]}"
        for name, p in stack.processes.items()
        if p.proc.poll() is not None
    ]


async def one_round(
    stack: Stack,
    workload: Workload,
    token: str,
    fault: Fault,
    at: float,
    rng: random.Random,
    injected: Counter[Fault],
    recoveries: dict[Fault, list[float]],
) -> None:
    """The stream, the fault at its instant, and the time until every service serves again;
    the stream goes on a little after that."""
    round_start = time.monotonic()
    recovered_at: list[float] = []

    async def inject() -> None:
        await asyncio.sleep(at)  # the fault's instant within the round
        await asyncio.to_thread(INJECT[fault], stack, rng)
        injected[fault] += 1
        over = time.monotonic()
        recoveries.setdefault(fault, []).append(await time_to_serve(workload, token, over))
        recovered_at.append(time.monotonic())

    def round_over() -> bool:
        now = time.monotonic()
        return (
            now > round_start + LOAD_SECONDS
            and bool(recovered_at)
            and now > recovered_at[0] + AFTER_RECOVERY_SECONDS
        )

    await asyncio.gather(inject(), workload.run(round_over, rng))


@pytest.mark.timeout(600)
async def test_changes_survive_random_faults(
    fault_stack: Stack, request: pytest.FixtureRequest
) -> None:
    stack = fault_stack
    seed = new_seed()
    rounds = int(os.environ.get("FAULT_ROUNDS", "30"))
    plan = schedule(random.Random(seed), rounds)
    ledger = Ledger(seed)
    injected: Counter[Fault] = Counter()
    recoveries: dict[Fault, list[float]] = {}
    started = time.monotonic()
    done = 0
    seen: Travelled | None = None

    def write_report() -> None:
        request.config.stash[REPORT] = report(
            seed, injected, recoveries, ledger, time.monotonic() - started, done, seen
        )

    token = await login(stack)
    workload = Workload(stack, ledger, token)
    try:
        # A round without a fault: the invariants hold and the resources give the baseline.
        warmup_until = time.monotonic() + LOAD_SECONDS
        await workload.run(lambda: time.monotonic() > warmup_until, random.Random(seed))
        assert await settled_changes(stack.pg, ledger) == []
        assert not ledger.unexpected, ledger.unexpected

        async def steady() -> bool:
            now = await measure(stack)
            return resource_problems(now, now, stack.pool_max) == []

        await eventually(steady, timeout=15, what="sessions matching sockets after warm-up")
        baseline = await measure(stack)

        for number, (fault, at) in enumerate(plan, 1):
            rng = random.Random(f"{seed}-{number}")
            where = f"seed {seed}, round {number} ({fault.value})"
            try:
                await one_round(stack, workload, token, fault, at, rng, injected, recoveries)
            finally:
                done = number
                write_report()
            assert not dead_services(stack), f"{where}: {dead_services(stack)}"
            assert not ledger.unexpected, (
                f"{where}: unexpected answers {ledger.unexpected}\n{stack.errors()}"
            )
            problems = await settled_changes(stack.pg, ledger)
            assert not problems, f"{where}: {problems}"
            problems, now = await settled_resources(stack, baseline)
            assert not problems, f"{where}: {problems}"
            baseline = rebase(baseline, now)
        # At the end: the whole history once more, and nothing answered INTERNAL or UNKNOWN.
        assert await settled_changes(stack.pg, ledger) == []
        assert not {"INTERNAL", "UNKNOWN"} & set(ledger.codes), ledger.codes
        assert sum(injected.values()) == rounds
        # Per event, through the envelope contract: what travelled is stored once each.
        seen = await travelled(stack)
        assert await stored_once(stack.pg, seen) == []
    finally:
        write_report()
        await workload.close()
