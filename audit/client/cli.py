"""The audit CLI: shows the stored history (newest first), readable or as JSON; `verify`
checks a time range of it for tampering (VerifyAuditHistory)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from audit.proto import audit_pb2, audit_pb2_grpc
from global_utils.grpc.cli import add_login_arguments, run_cli, to_json
from global_utils.grpc.client import ClientSettings, find_service
from user.client.auth import login_session, session_channel

SERVICE = "audit"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m audit.client", description="Show the audit history, newest first."
    )
    add_login_arguments(p)
    p.add_argument("--object-name", default="")
    p.add_argument("--object-id", default="")
    p.add_argument("--service", default="")
    p.add_argument("--action-type", default="", choices=["", "insert", "update", "delete"])
    p.add_argument("--since", help="ISO time: only changes at or after it")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    return p


def line(record: audit_pb2.AuditRecord) -> str:
    when = record.action_time.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")
    return (
        f"{when}  {record.service:<10} {record.action_type:<6} {record.object_name} "
        f"{record.object_id}  by {record.performed_by}"
        + (f"  trace {record.trace_id}" if record.trace_id else "")
    )


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    session = await login_session(settings, args.email, args.password, args.token)
    params = audit_pb2.SearchParams(
        object_name=args.object_name,
        object_id=args.object_id,
        service=args.service,
        action_type=args.action_type,
        page_size=args.limit,
    )
    if args.since:
        since = datetime.fromisoformat(args.since)
        params.from_time.FromDatetime(since if since.tzinfo else since.replace(tzinfo=UTC))
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        reply = await audit_pb2_grpc.AuditSrvStub(channel).GetAuditRecords(params)
    if args.json:
        print(to_json(reply))
        return
    for record in reply.record:
        print(line(record))
    print(f"({len(reply.record)} records{', more available' if reply.next_page_token else ''})")


def verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m audit.client verify",
        description="Check the stored history for tampering: names the first row (oldest"
        " first) whose content or link to its chain does not match; exit status 1 if any.",
    )
    add_login_arguments(p)
    p.add_argument("--from", dest="from_time", help="ISO time: rows at or after it (default: all)")
    p.add_argument("--to", dest="thru_time", help="ISO time: rows before it (default: all)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    return p


def _timestamp_of(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verdict(result: audit_pb2.VerifyResult) -> str:
    checked = f"{result.rows_checked} rows checked, {result.rows_unchained} from before chaining"
    if result.intact:
        return f"intact: {checked}"
    when = result.first_bad_action_time.ToDatetime(tzinfo=UTC).isoformat()
    row = f"event {result.first_bad_event_id} at {when}" if result.first_bad_event_id else "a row"
    return (
        f"TAMPERED: {row} (chain {result.first_bad_chain_id}, row {result.first_bad_chain_seq}):"
        f" {result.reason}; {checked}"
    )


async def verify_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    session = await login_session(settings, args.email, args.password, args.token)
    params = audit_pb2.VerifyParams()
    if args.from_time:
        params.from_time.FromDatetime(_timestamp_of(args.from_time))
    if args.thru_time:
        params.thru_time.FromDatetime(_timestamp_of(args.thru_time))
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        result = await audit_pb2_grpc.AuditSrvStub(channel).VerifyAuditHistory(params)
    print(to_json(result) if args.json else verdict(result))
    if not result.intact:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["verify"]:
        run_cli(verify_parser(), verify_async, args[1:])
    else:
        run_cli(parser(), main_async, args)
