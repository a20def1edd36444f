"""The audit event contract: headers out, model back in."""

from __future__ import annotations

import pydantic
import pytest

from global_utils.audit import ActionType, AuditEvent, AuditHeader
from user.proto import user_pb2


def test_event_round_trips_through_headers() -> None:
    record = user_pb2.User(id=9, firstname="A")
    event = AuditEvent.for_record(
        service="user",
        action_func="AfterCreateUser",
        action_type=ActionType.INSERT,
        object_name="user",
        object_id=9,
        performed_by="1",
        record=record,
    )
    headers = event.headers()
    assert headers[AuditHeader.MSG_ID] == headers[AuditHeader.EVENT_ID] == str(event.event_id)
    assert headers[AuditHeader.PAYLOAD_TYPE] == "user.User"
    assert AuditEvent.from_message(headers, event.payload) == event
    assert user_pb2.User.FromString(event.payload) == record


def test_malformed_headers_are_rejected() -> None:
    with pytest.raises((pydantic.ValidationError, ValueError)):
        AuditEvent.from_message({"service": "user"}, b"")
    with pytest.raises((pydantic.ValidationError, ValueError)):
        AuditEvent.from_message({AuditHeader.ACTION_TIME: "yesterday"}, b"")
