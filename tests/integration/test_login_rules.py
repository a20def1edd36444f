"""Login rules through real channels: who may log in, the failed-login throttle (with its
default settings: 5 failures, 300 s) and the login events in the audit outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from devtools.stack import EmbeddedPostgres
from global_utils.runtime.timeutil import to_timestamp
from tests.helpers import new_user
from user.proto import user_pb2
from user.server.passwords import PasswordHasher

WRONG_LOGIN = "invalid email or password"
PASSWORD = "right-pw-1"


@pytest.fixture
async def appuser_db(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the user service's database."""
    conn = await asyncpg.connect(postgres.dsn("appuser"))
    yield conn
    await conn.close()


async def login(stub, email: str, pwd: str) -> grpc.StatusCode:
    try:
        await stub.Auth(user_pb2.User(email=email, pwd=pwd))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            assert exc.details() == WRONG_LOGIN
        return exc.code()
    return grpc.StatusCode.OK


async def an_active_user(stub, auth, **fields: object) -> user_pb2.User:
    values: dict[str, object] = {"active": True, "pwd": PASSWORD, **fields}
    return (await stub.CreateUser(new_user(**values), metadata=auth)).user


async def login_events(
    conn: asyncpg.Connection, email: str
) -> list[tuple[dict, user_pb2.LoginAttempt]]:
    """The login events of email in the outbox, oldest first: headers and detail."""
    rows = await conn.fetch(
        "SELECT headers, payload FROM audit_outbox WHERE headers->>'objectName' = 'session'"
        " ORDER BY createdat"
    )
    events = []
    for row in rows:
        detail = user_pb2.LoginAttempt.FromString(row["payload"])
        if detail.email == email.lower():
            events.append((json.loads(row["headers"]), detail))
    return events


# who may log in


async def test_an_inactive_user_is_refused_like_a_wrong_password(user_stub, auth) -> None:
    made = await an_active_user(user_stub, auth, active=False)
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("when", ["not yet valid", "no longer valid"])
async def test_a_user_outside_their_validity_dates_is_refused(user_stub, auth, when: str) -> None:
    now = datetime.now(UTC)
    start, end = (
        (now + timedelta(days=1), now + timedelta(days=2))
        if when == "not yet valid"
        else (now - timedelta(days=2), now - timedelta(days=1))
    )
    made = await an_active_user(
        user_stub, auth, valid_from=to_timestamp(start), valid_thru=to_timestamp(end)
    )
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.UNAUTHENTICATED


# the throttle, with the defaults the session's user service runs with


async def test_five_failures_throttle_the_email_without_hashing(
    user_stub, auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await an_active_user(user_stub, auth)
    for _ in range(5):
        assert await login(user_stub, made.email, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    checks = 0
    real_check = PasswordHasher.check

    async def counting(self: PasswordHasher, password: str, hashed: str | None) -> bool:
        nonlocal checks
        checks += 1
        return await real_check(self, password, hashed)

    monkeypatch.setattr(PasswordHasher, "check", counting)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.Auth(user_pb2.User(email=made.email.upper(), pwd=PASSWORD))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    seconds = int(err.value.details().split(" in ")[1].split()[0])
    assert 290 <= seconds <= 300, err.value.details()
    assert checks == 0  # refused before bcrypt, even with the right password
    assert await login(user_stub, "other-" + made.email, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    assert checks == 1  # other emails are not throttled


async def test_the_throttle_lasts_the_default_window(user_stub, auth, appuser_db) -> None:
    made = await an_active_user(user_stub, auth)
    for _ in range(5):
        await login(user_stub, made.email, "wrong")

    async def window_started(seconds_ago: int) -> None:
        await appuser_db.execute(
            "UPDATE login_throttle SET windowstart = now() - make_interval(secs => $2)"
            " WHERE email = $1",
            made.email.lower(),
            seconds_ago,
        )

    await window_started(295)
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.RESOURCE_EXHAUSTED
    await window_started(301)
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.OK
    assert (
        await appuser_db.fetchval(
            "SELECT count(*) FROM login_throttle WHERE email = $1", made.email.lower()
        )
        == 0
    )  # a success clears the count


async def test_a_success_resets_the_count(user_stub, auth) -> None:
    made = await an_active_user(user_stub, auth)
    for _ in range(4):
        await login(user_stub, made.email, "wrong")
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.OK
    for _ in range(4):
        assert await login(user_stub, made.email, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.OK


async def test_an_unknown_email_is_throttled_too(user_stub) -> None:
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(5):
        assert await login(user_stub, email, "guess") == grpc.StatusCode.UNAUTHENTICATED
    assert await login(user_stub, email, "guess") == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_failure_purges_only_rows_whose_window_has_passed(user_stub, appuser_db) -> None:
    tag = uuid.uuid4().hex[:8]
    passed, current = f"passed-{tag}@example.com", f"current-{tag}@example.com"
    await appuser_db.execute(
        "INSERT INTO login_throttle (email, windowstart, failures) VALUES"
        " ($1, now() - interval '10 days', 2), ($2, now() - interval '10 seconds', 2)",
        passed,
        current,
    )
    other = f"other-{tag}@example.com"
    assert await login(user_stub, other, "guess") == grpc.StatusCode.UNAUTHENTICATED
    rows = await appuser_db.fetch(
        "SELECT email, failures FROM login_throttle WHERE email = ANY($1::text[])",
        [passed, current, other],
    )
    assert {r["email"]: r["failures"] for r in rows} == {current: 2, other: 1}


# logins in the audit history


async def test_logins_are_audited_without_the_password(user_stub, auth, appuser_db) -> None:
    made = await an_active_user(user_stub, auth, email=f"Mixed-{uuid.uuid4().hex[:8]}@Example.com")
    assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.OK
    assert await login(user_stub, made.email, "wrong-guess") == grpc.StatusCode.UNAUTHENTICATED
    events = await login_events(appuser_db, made.email)
    assert [(h["actionType"], d.outcome) for h, d in events] == [
        ("login", user_pb2.LOGIN_OUTCOME_SUCCEEDED),
        ("login_failed", user_pb2.LOGIN_OUTCOME_BAD_CREDENTIALS),
    ]
    for headers, detail in events:
        assert headers["service"] == "user" and headers["objectName"] == "session"
        assert headers["objectId"] == str(made.id) and detail.user_id == made.id
        assert headers["payloadType"] == "user.LoginAttempt"
        assert datetime.fromisoformat(headers["actionTime"]).tzinfo is not None
        assert detail.email == made.email.lower()
    assert [h["performedBy"] for h, _ in events] == [str(made.id), ""]
    rows = await appuser_db.fetch(
        "SELECT headers::text AS h, payload FROM audit_outbox WHERE headers->>'objectId' = $1",
        str(made.id),
    )
    for row in rows:
        for secret in (PASSWORD, "wrong-guess"):
            assert secret not in row["h"] and secret.encode() not in row["payload"]


async def test_an_unknown_email_and_a_disabled_account_are_audited(
    user_stub, auth, appuser_db
) -> None:
    email = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
    await login(user_stub, email, "guess")
    [(headers, detail)] = await login_events(appuser_db, email)
    assert headers["actionType"] == "login_failed" and headers["objectId"] == ""
    assert detail.user_id == 0 and detail.outcome == user_pb2.LOGIN_OUTCOME_BAD_CREDENTIALS
    made = await an_active_user(user_stub, auth, active=False)
    await login(user_stub, made.email, PASSWORD)
    [(headers, detail)] = await login_events(appuser_db, made.email)
    assert headers["objectId"] == str(made.id)
    assert detail.outcome == user_pb2.LOGIN_OUTCOME_ACCOUNT_DISABLED


async def test_a_throttled_email_is_audited_once_per_window(user_stub, auth, appuser_db) -> None:
    made = await an_active_user(user_stub, auth)
    for _ in range(5):
        await login(user_stub, made.email, "wrong")
    for _ in range(3):
        assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.RESOURCE_EXHAUSTED
    outcomes = [d.outcome for _, d in await login_events(appuser_db, made.email)]
    assert outcomes == [user_pb2.LOGIN_OUTCOME_BAD_CREDENTIALS] * 5 + [
        user_pb2.LOGIN_OUTCOME_THROTTLED
    ]
    # the next window's refusals are recorded again, once
    await appuser_db.execute(
        "UPDATE login_throttle SET windowstart = now() - interval '301 seconds' WHERE email = $1",
        made.email.lower(),
    )
    for _ in range(5):
        await login(user_stub, made.email, "wrong")
    for _ in range(2):
        assert await login(user_stub, made.email, PASSWORD) == grpc.StatusCode.RESOURCE_EXHAUSTED
    outcomes = [d.outcome for _, d in await login_events(appuser_db, made.email)]
    assert outcomes.count(user_pb2.LOGIN_OUTCOME_THROTTLED) == 2
