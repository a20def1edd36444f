"""bcrypt hashing in worker processes of its own, so the event loop never waits on it.

Processes, not threads: a hashing thread in the service process must take the GIL back after
every hash, and CPython makes the thread that gives the GIL up wait until the other one has it.
With the hashing thread at low priority, the event loop thread then waits for the scheduler to
get round to that thread: measured under 8 logins, GetUserById lost a third of its rate and its
p99 rose well beyond what the same hashing load causes from an unrelated process. The same
holds for the threads a `ProcessPoolExecutor` runs in the service to feed its workers and
collect their results, so there are none: each worker (user/server/hashing_worker.py) is a
subprocess the event loop talks to over its pipes, one request at a time."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from contextlib import suppress

import bcrypt

from user.server import hashing_worker
from user.server.hashing_worker import ANSWER, CHECK, HASH, OK, REQUEST

logger = logging.getLogger(__name__)

MAX_BCRYPT_BYTES = 72
BCRYPT_NICENESS = hashing_worker.NICENESS
# How long stop() lets a worker finish the hash in hand before it is killed.
_STOP_GRACE_SECONDS = 2.0


# Each hashing process holds about 10 MB: the default stops here on big machines, whatever
# their core count (BCRYPT_WORKERS raises it).
MAX_DEFAULT_WORKERS = 4


def default_bcrypt_workers() -> int:
    """One per core this process may run on but one, which stays free for the event loop;
    at most MAX_DEFAULT_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))  # a container's cpuset, not the host's cores
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, MAX_DEFAULT_WORKERS))


class WorkerGone(Exception):
    """The hashing process ended (killed from outside) before it answered."""


class HashingWorker:
    """One hashing process and its pipes; one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls) -> HashingWorker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            hashing_worker.__name__,
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def request(self, operation: int, password: bytes, other: bytes) -> bytes:
        """The worker's answer; ValueError when bcrypt refused the input."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None  # both are pipes (start())
        try:
            stdin.write(REQUEST.pack(operation, len(password), len(other)) + password + other)
            await stdin.drain()
            status, size = ANSWER.unpack(await stdout.readexactly(ANSWER.size))
            payload = await stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerGone from exc
        if status != OK:
            raise ValueError(payload.decode(errors="replace"))
        return payload

    async def stop(self) -> None:
        """Ends the worker's input (it exits after the hash in hand); kills it if it lingers."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), _STOP_GRACE_SECONDS)
        except TimeoutError:
            with suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()


class PasswordHasher:
    def __init__(self, rounds: int = 10, workers: int | None = None) -> None:
        self._rounds = rounds
        self._workers = workers or default_bcrypt_workers()
        self._idle: asyncio.Queue[HashingWorker] | None = None
        self._all: set[HashingWorker] = set()
        self._decoy: bytes | None = None
        self._outstanding = 0  # hashes asked for and not finished

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def in_flight(self) -> int:
        """Hashes a worker is computing now: each worker takes one at a time."""
        return min(self._outstanding, self._workers)

    @property
    def queued(self) -> int:
        """Hashes waiting for a free worker."""
        return max(0, self._outstanding - self._workers)

    async def start(self) -> None:
        """Starts the workers (their imports go on while the service gets ready: the first
        login does not pay for a process start)."""
        idle: asyncio.Queue[HashingWorker] = asyncio.Queue()
        for worker in await asyncio.gather(*(HashingWorker.start() for _ in range(self._workers))):
            self._all.add(worker)
            idle.put_nowait(worker)
        self._idle = idle

    async def stop(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), None
        await asyncio.gather(*(worker.stop() for worker in workers))

    async def _run(self, operation: int, password: bytes, other: bytes) -> bytes:
        if max(len(password), len(other)) > hashing_worker.MAX_FIELD_BYTES:
            raise ValueError("too long for bcrypt")  # as bcrypt itself refuses it
        if self._idle is None:
            await self.start()
        assert self._idle is not None  # start() made it
        self._outstanding += 1
        try:
            worker = await self._idle.get()
            # The request runs to its answer even if the caller gives up (a cancelled call):
            # the worker goes back to the idle ones only with nothing left in its pipes.
            return await asyncio.shield(self._on(worker, self._idle, operation, password, other))
        finally:
            self._outstanding -= 1

    async def _on(
        self,
        worker: HashingWorker,
        idle: asyncio.Queue[HashingWorker],
        operation: int,
        password: bytes,
        other: bytes,
    ) -> bytes:
        try:
            return await worker.request(operation, password, other)
        except WorkerGone:
            # A worker died (killed from outside): a fresh one, and this hash once more.
            logger.error("a password hashing process died; starting a new one")
            self._all.discard(worker)
            await worker.stop()
            worker = await HashingWorker.start()
            self._all.add(worker)
            return await worker.request(operation, password, other)
        finally:
            if worker in self._all:
                idle.put_nowait(worker)

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await self._run(HASH, password.encode(), salt)
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        """True when password matches hashed; with no hash, spends the same time and fails."""
        if len(password.encode()) > MAX_BCRYPT_BYTES:
            return False  # bcrypt refuses such input; no stored password can be that long
        if hashed is None:
            # Unknown email: compare against a decoy so timing does not reveal which was wrong.
            if self._decoy is None:
                self._decoy = await self._run(HASH, b"decoy", bcrypt.gensalt(self._rounds))
            await self._run(CHECK, password.encode(), self._decoy)
            return False
        try:
            return await self._run(CHECK, password.encode(), hashed.encode()) == b"\x01"
        except ValueError:  # a stored value that is not a bcrypt hash
            return False
