"""audit.AuditSrv, its one servicer: converts between protobuf messages and the domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeAlias

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import DecodeError

from audit.proto import audit_pb2, audit_pb2_grpc
from audit.server import payload_types
from audit.server.models import AuditQuery, HistoryCheck, StoredEvent
from audit.server.queries.history_check import HistoryChecker
from audit.server.queries.service import AuditService
from global_errors import Failure
from global_utils.grpc.protoconv import decode_page_token, encode_page_token, page_limit, read_time
from global_utils.identity.principal import current_principal
from global_utils.runtime.timeutil import to_timestamp

Context: TypeAlias = grpc.aio.ServicerContext


def detail_as_json(payload_type: str, detail: bytes) -> str:
    """The stored record as JSON when its type is known here, else empty."""
    if not payload_type or not detail:
        return ""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(payload_type)
        record = message_factory.GetMessageClass(descriptor).FromString(detail)
    except (KeyError, TypeError, DecodeError):  # a type unknown here, or bytes that are not it
        return ""
    return MessageToJson(record, indent=None)


def record_to_proto(record: StoredEvent) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        event_id=str(record.event_id),
        action_time=to_timestamp(record.action_time),
        topic=record.topic,
        service=record.service,
        action_func=record.action_func,
        action_type=record.action_type,
        object_name=record.object_name,
        object_id=record.object_id,
        performed_by=record.performed_by,
        recorded_time=to_timestamp(record.recorded_time),
        object_detail=record.object_detail,
        payload_type=record.payload_type,
        object_detail_json=detail_as_json(record.payload_type, record.object_detail),
        trace_id=record.trace_id or "",
    )


PAGE_KIND = "audit"


def page_position(record: StoredEvent) -> str:
    return f"{record.action_time.isoformat()}|{record.event_id}"


def parse_position(text: str) -> tuple[datetime, uuid.UUID]:
    when, _, event_id = text.partition("|")
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment, uuid.UUID(event_id)


def query_from_proto(msg: audit_pb2.SearchParams) -> AuditQuery:
    query = AuditQuery(
        object_name=msg.object_name,
        object_id=msg.object_id,
        service=msg.service,
        action_type=msg.action_type,
        performed_by=msg.performed_by,
        limit=page_limit(msg.page_size),
    )
    query.from_time = read_time(msg, "from_time", query.invalid)
    query.thru_time = read_time(msg, "thru_time", query.invalid)
    query.before = decode_page_token(PAGE_KIND, msg.page_token, query.invalid, parse_position)
    return query


def history_check_to_proto(check: HistoryCheck) -> audit_pb2.VerifyResult:
    reply = audit_pb2.VerifyResult(
        intact=check.first_break is None,
        rows_checked=check.rows_checked,
        rows_unchained=check.rows_unchained,
    )
    bad = check.first_break
    if bad is not None:
        reply.reason = bad.reason
        reply.first_bad_chain_id = bad.chain_id or 0
        reply.first_bad_chain_seq = bad.chain_seq or 0
        if bad.event_id is not None:
            reply.first_bad_event_id = str(bad.event_id)
        if bad.action_time is not None:
            reply.first_bad_action_time.CopyFrom(to_timestamp(bad.action_time))
    return reply


class AuditServicer(audit_pb2_grpc.AuditSrvServicer):
    """audit.AuditSrv: the history queries (GetAuditRecords) and the history check
    (VerifyAuditHistory)."""

    def __init__(self, service: AuditService, history: HistoryChecker) -> None:
        # the producers' record types, so their records are shown as JSON too
        payload_types.register()
        self._service = service
        self._history = history

    async def GetAuditRecords(
        self, request: audit_pb2.SearchParams, context: Context
    ) -> audit_pb2.AuditRecords:
        records, more = await self._service.search(query_from_proto(request), current_principal())
        reply = audit_pb2.AuditRecords(record=[record_to_proto(r) for r in records])
        if more and records:
            reply.next_page_token = encode_page_token(PAGE_KIND, page_position(records[-1]))
        return reply

    async def VerifyAuditHistory(
        self, request: audit_pb2.VerifyParams, context: Context
    ) -> audit_pb2.VerifyResult:
        invalid: list[Failure] = []
        from_time = read_time(request, "from_time", invalid)
        thru_time = read_time(request, "thru_time", invalid)
        return history_check_to_proto(
            await self._history.verify(current_principal(), from_time, thru_time, invalid)
        )
