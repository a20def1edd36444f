"""Small shared test helpers (no fixtures)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from global_utils.timeutil import to_timestamp
from user.proto import user_pb2


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = ""
) -> None:
    """Awaits check until it returns True; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def new_user(**overrides: object) -> user_pb2.User:
    """A valid user with a unique email."""
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, object] = {
        "firstname": "Test",
        "lastname": "User",
        "email": f"t-{uuid.uuid4().hex[:10]}@example.com",
        "pwd": "s3cret-pw",
        "company": "TestCo",
        "active": False,
        "valid_from": to_timestamp(now - timedelta(days=1)),
        "valid_thru": to_timestamp(now + timedelta(days=30)),
    }
    fields.update(overrides)
    return user_pb2.User(**fields)  # type: ignore[arg-type]
