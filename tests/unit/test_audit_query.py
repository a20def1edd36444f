"""Audit history queries: SQL building, rules, page tokens, JSON rendering of details."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from audit.server.models import AuditQuery, StoredEvent
from audit.server.queries.validation import validate_query
from audit.server.repository import build_search
from audit.server.servicer import PAGE_KIND, detail_as_json, page_position, parse_position
from global_utils.data.sql import Filters
from global_utils.grpc.protoconv import decode_page_token, encode_page_token
from user.proto import user_pb2

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)


def test_filters_number_placeholders_and_reuse_values() -> None:
    filters = Filters()
    filters.add("a = {0}", 1)
    filters.add("b <= {0} AND c >= {0}", 2)
    assert filters.where() == " WHERE a = $1 AND b <= $2 AND c >= $2"
    assert filters.limit(10) == " LIMIT $3"
    assert filters.args == [1, 2, 10]
    assert Filters().where() == ""


def test_search_is_newest_first_with_keyset_paging() -> None:
    before = (T1, uuid.UUID(int=5))
    sql, args = build_search(
        AuditQuery(
            object_name="user",
            object_id="7",
            service="user",
            action_type="update",
            from_time=T0,
            thru_time=T1,
            before=before,
            limit=50,
        )
    )
    assert args == ["user", "7", "user", "update", T0, T1, T1, uuid.UUID(int=5), 51]
    for clause in (
        "objectname = $1",
        "objectid = $2",
        "actiontime >= $5",
        "actiontime < $6",
        "(actiontime, eventid) < ($7, $8)",
    ):
        assert clause in sql
    assert sql.endswith("ORDER BY actiontime DESC, eventid DESC LIMIT $9")


def test_query_rules() -> None:
    assert validate_query(AuditQuery()) == []
    fields = [f.field for f in validate_query(AuditQuery(object_id="1", limit=0))]
    assert fields == ["object_name", "page_size"]
    assert [f.field for f in validate_query(AuditQuery(from_time=T1, thru_time=T0))] == [
        "thru_time"
    ]
    assert [f.field for f in validate_query(AuditQuery(service="x\x00"))] == ["service"]


def test_page_tokens_round_trip_and_garbage_is_reported() -> None:
    record = StoredEvent(
        uuid.uuid4(), T0, "Audit", "user", "f", "insert", "user", "1", "2", T0, b"", ""
    )
    failures: list = []
    token = encode_page_token(PAGE_KIND, page_position(record))
    assert decode_page_token(PAGE_KIND, token, failures, parse_position) == (T0, record.event_id)
    assert failures == []
    for garbage in ("x", "YXVkaXQ6bm9wZQ==", "dXNlcjox"):
        decode_page_token(PAGE_KIND, garbage, failures, parse_position)
    assert [f.field for f in failures] == ["page_token"] * 3


def test_details_of_known_types_render_as_json() -> None:
    detail = user_pb2.User(id=3, firstname="Ann").SerializeToString()
    assert '"firstname": "Ann"' in detail_as_json("user.User", detail)
    assert detail_as_json("no.Such", detail) == ""
    assert detail_as_json("user.User", b"\xff\xff\xff") == ""
    assert detail_as_json("", detail) == ""
