"""bcrypt hashing, run in worker threads so the event loop never waits on it."""

from __future__ import annotations

import asyncio

import bcrypt

MAX_BCRYPT_BYTES = 72


class PasswordHasher:
    def __init__(self, rounds: int = 10) -> None:
        self._rounds = rounds
        self._decoy: bytes | None = None

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        """True when password matches hashed; with no hash, spends the same time and fails."""
        if len(password.encode()) > MAX_BCRYPT_BYTES:
            return False  # bcrypt refuses such input; no stored password can be that long
        if hashed is None:
            # Unknown email: compare against a decoy so timing does not reveal which was wrong.
            if self._decoy is None:
                self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(self._rounds))
            await asyncio.to_thread(bcrypt.checkpw, password.encode(), self._decoy)
            return False
        try:
            return await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed.encode())
        except ValueError:  # a stored value that is not a bcrypt hash
            return False
