"""Each user change publishes an audit event on NATS subject Audit."""

from __future__ import annotations

import asyncio
from datetime import datetime

from nats.aio.msg import Msg

from audit.server.events.wire import ReceivedEvent
from global_utils.events.audit_event import AuditHeader
from global_utils.events.signing import PUBLISHED_HEADERS
from tests.helpers import audit_events_of, new_user
from user.proto import user_pb2


async def test_create_update_delete_each_publish_one_event(
    user_stub, auth, duck_token, nats_client
) -> None:
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        await received.put(msg)

    sub = await nats_client.subscribe("Audit", cb=collect)
    await nats_client.flush()
    me = await user_stub.ValidateToken(user_pb2.Token(token=duck_token))

    made = (
        await user_stub.CreateUser(new_user(pwd="hidden-pw", company="AuditCo"), metadata=auth)
    ).user
    change = user_pb2.User()
    change.CopyFrom(made)
    change.lastname = "Audited"
    await user_stub.UpdateUser(change, metadata=auth)
    await user_stub.DeleteUser(user_pb2.SearchId(id=made.id), metadata=auth)

    events: list[tuple[dict[str, str], bytes]] = []
    while len(events) < 3:  # (changes close together may travel in one envelope)
        msg = await asyncio.wait_for(received.get(), timeout=10)
        for headers, data in audit_events_of(msg):
            if headers.get(AuditHeader.OBJECT_ID) == str(made.id):
                events.append((headers, data))
    await sub.unsubscribe()

    expected = [
        ("insert", "AfterCreateUser", "User"),
        ("update", "AfterUpdateUser", "Audited"),
        ("delete", "AfterDeleteUser", "Audited"),
    ]
    ids = set()
    for (headers, data), (action, func, lastname) in zip(events, expected, strict=True):
        # relayed from the outbox in the order the consumer's fast path reads
        assert list(headers)[: len(PUBLISHED_HEADERS)] == list(PUBLISHED_HEADERS)
        assert headers[AuditHeader.SERVICE] == "user"
        assert headers[AuditHeader.ACTION_TYPE] == action
        assert headers[AuditHeader.ACTION_FUNC] == func
        assert headers[AuditHeader.OBJECT_NAME] == "user"
        assert headers[AuditHeader.PERFORMED_BY] == me.e_uid != str(made.id)
        assert headers[AuditHeader.PAYLOAD_TYPE] == "user.User"
        assert datetime.fromisoformat(headers[AuditHeader.ACTION_TIME]).tzinfo is not None
        event = ReceivedEvent.from_headers(headers, data)  # as the audit consumer parses it
        ids.add(event.event_id)
        payload = user_pb2.User.FromString(data)
        assert payload.id == made.id and payload.lastname == lastname
        assert payload.pwd == "" and b"hidden-pw" not in data and b"$2b$" not in data
    assert len(ids) == 3


async def test_failed_change_publishes_nothing(user_stub, auth, nats_client) -> None:
    received: list[Msg] = []

    async def collect(msg: Msg) -> None:
        received.append(msg)

    sub = await nats_client.subscribe("Audit", cb=collect)
    await nats_client.flush()
    active = (await user_stub.CreateUser(new_user(active=True), metadata=auth)).user
    try:
        await user_stub.DeleteUser(user_pb2.SearchId(id=active.id), metadata=auth)
    except Exception:
        pass
    # A later, successful change is the marker that earlier publishes would have arrived.
    marker = (await user_stub.CreateUser(new_user(), metadata=auth)).user
    deadline = asyncio.get_running_loop().time() + 10

    def events() -> list[dict[str, str]]:
        return [headers for m in received for headers, _ in audit_events_of(m)]

    while not any(h.get("objectId") == str(marker.id) for h in events()):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    about_active = [h.get("actionType") for h in events() if h.get("objectId") == str(active.id)]
    assert "delete" not in about_active
