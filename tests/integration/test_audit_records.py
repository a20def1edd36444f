"""Every change becomes exactly one audit row; the audit query API filters and pages it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest

from audit.proto import audit_pb2
from devtools.stack import EmbeddedPostgres
from global_utils.identity.principal import bearer_metadata
from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2
from tests.helpers import eventually, new_promotion, new_user
from user.proto import user_pb2


async def rows_for(postgres: EmbeddedPostgres, object_name: str, object_id: int) -> list:
    conn = await asyncpg.connect(postgres.dsn("audit"))
    try:
        return await conn.fetch(
            "SELECT * FROM audit WHERE objectname = $1 AND objectid = $2 ORDER BY actiontime",
            object_name,
            str(object_id),
        )
    finally:
        await conn.close()


async def wait_rows(postgres, object_name: str, object_id: int, count: int) -> list:
    async def enough() -> bool:
        return len(await rows_for(postgres, object_name, object_id)) >= count

    await eventually(enough, timeout=20, what=f"{count} audit rows for {object_name} {object_id}")
    return await rows_for(postgres, object_name, object_id)


async def test_user_changes_become_one_row_each(
    audit_host, user_stub, auth, duck_token, postgres
) -> None:
    me = await user_stub.ValidateToken(user_pb2.Token(token=duck_token))
    made = (await user_stub.CreateUser(new_user(pwd="never-stored"), metadata=auth)).user
    change = user_pb2.User()
    change.CopyFrom(made)
    change.firstname = "Audited"
    await user_stub.UpdateUser(change, metadata=auth)
    await user_stub.DeleteUser(user_pb2.SearchId(id=made.id), metadata=auth)
    rows = await wait_rows(postgres, "user", made.id, 3)
    assert [(r["actiontype"], r["actionfunc"]) for r in rows] == [
        ("insert", "AfterCreateUser"),
        ("update", "AfterUpdateUser"),
        ("delete", "AfterDeleteUser"),
    ]
    for row in rows:
        assert row["service"] == "user" and row["topic"] == "Audit"
        assert row["performedby"] == me.e_uid
        assert row["payloadtype"] == "user.User"
        assert row["actiontime"].tzinfo is not None
        assert row["recordedtime"] >= row["actiontime"]
        stored = user_pb2.User.FromString(row["objectdetail"])
        assert stored.id == made.id and stored.pwd == ""
    assert user_pb2.User.FromString(rows[2]["objectdetail"]).firstname == "Audited"
    assert len({r["eventid"] for r in rows}) == 3


async def test_promotion_changes_become_one_row_each(
    audit_host, promotion_stub, auth, postgres
) -> None:
    made = (await promotion_stub.CreatePromotion(new_promotion(), metadata=auth)).promotion
    await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=auth)
    rows = await wait_rows(postgres, "promotion", made.id, 2)
    assert [r["actiontype"] for r in rows] == ["insert", "delete"]
    assert all(r["service"] == "promotion" for r in rows)
    detail = promotion_pb2.Promotion.FromString(rows[0]["objectdetail"])
    assert len(detail.product) == 2 and detail.product[0].discount[1].id == 77


async def test_rolled_back_change_leaves_no_event(audit_host, user_stub, auth, postgres) -> None:
    active = (await user_stub.CreateUser(new_user(active=True), metadata=auth)).user
    with pytest.raises(grpc.aio.AioRpcError):
        await user_stub.DeleteUser(user_pb2.SearchId(id=active.id), metadata=auth)
    marker = (await user_stub.CreateUser(new_user(), metadata=auth)).user
    # Events may be relayed by different instances, so wait for both, not just the later one.
    await wait_rows(postgres, "user", marker.id, 1)
    await wait_rows(postgres, "user", active.id, 1)
    rows = await rows_for(postgres, "user", active.id)
    assert [r["actiontype"] for r in rows] == ["insert"]
    conn = await asyncpg.connect(postgres.dsn("appuser"))
    try:
        outbox = await conn.fetch(
            "SELECT headers FROM audit_outbox WHERE headers->>'objectId' = $1", str(active.id)
        )
    finally:
        await conn.close()
    assert [json.loads(r["headers"])["actionType"] for r in outbox] == ["insert"]


async def test_seed_rows_exist(audit_stub, auth) -> None:
    reply = await audit_stub.GetAuditRecords(
        audit_pb2.SearchParams(object_name="user", object_id="2234567890"), metadata=auth
    )
    assert [r.action_type for r in reply.record] == ["update", "insert"]


async def test_query_filters_newest_first_and_pages(audit_stub, user_stub, auth, postgres) -> None:
    made = (await user_stub.CreateUser(new_user(), metadata=auth)).user
    for name in ("B", "C", "D"):
        change = user_pb2.User()
        change.CopyFrom(made)
        change.firstname = name
        await user_stub.UpdateUser(change, metadata=auth)
    await user_stub.DeleteUser(user_pb2.SearchId(id=made.id), metadata=auth)
    await wait_rows(postgres, "user", made.id, 5)

    by_object = audit_pb2.SearchParams(object_name="user", object_id=str(made.id))
    every = (await audit_stub.GetAuditRecords(by_object, metadata=auth)).record
    assert [r.action_type for r in every] == ["delete", "update", "update", "update", "insert"]
    times = [r.action_time.ToDatetime() for r in every]
    assert times == sorted(times, reverse=True)
    assert (
        every[1].object_detail_json and json.loads(every[1].object_detail_json)["firstname"] == "D"
    )
    assert user_pb2.User.FromString(every[1].object_detail).firstname == "D"

    paged: list[str] = []
    token = ""
    while True:
        params = audit_pb2.SearchParams(
            object_name="user", object_id=str(made.id), page_size=2, page_token=token
        )
        reply = await audit_stub.GetAuditRecords(params, metadata=auth)
        paged += [r.event_id for r in reply.record]
        token = reply.next_page_token
        if not token:
            break
    assert paged == [r.event_id for r in every]

    updates = await audit_stub.GetAuditRecords(
        audit_pb2.SearchParams(object_name="user", object_id=str(made.id), action_type="update"),
        metadata=auth,
    )
    assert len(updates.record) == 3

    window = audit_pb2.SearchParams(
        object_name="user",
        object_id=str(made.id),
        from_time=every[3].action_time,
        thru_time=every[0].action_time,
    )
    in_window = (await audit_stub.GetAuditRecords(window, metadata=auth)).record
    assert [r.event_id for r in in_window] == [r.event_id for r in every[1:4]]

    by_service = await audit_stub.GetAuditRecords(
        audit_pb2.SearchParams(service="user", from_time=every[-1].action_time), metadata=auth
    )
    assert {r.service for r in by_service.record} == {"user"}
    assert {r.event_id for r in every} <= {r.event_id for r in by_service.record}


async def test_query_needs_a_token_and_rejects_garbage(audit_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await audit_stub.GetAuditRecords(audit_pb2.SearchParams())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for bad in (
        audit_pb2.SearchParams(object_id="1"),
        audit_pb2.SearchParams(page_token="nope"),
        audit_pb2.SearchParams(page_size=-3),
        audit_pb2.SearchParams(service="\x00"),
        audit_pb2.SearchParams(
            from_time=to_timestamp(datetime(2024, 1, 2, tzinfo=UTC)),
            thru_time=to_timestamp(datetime(2024, 1, 1, tzinfo=UTC)),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await audit_stub.GetAuditRecords(bad, metadata=auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


async def test_token_from_user_service_works_in_legacy_style(audit_stub, duck_token) -> None:
    reply = await audit_stub.GetAuditRecords(
        audit_pb2.SearchParams(object_name="promotion", object_id="3234567890"),
        metadata=(("token", duck_token),),
    )
    assert len(reply.record) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await audit_stub.GetAuditRecords(
            audit_pb2.SearchParams(), metadata=bearer_metadata(duck_token + "x")
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
