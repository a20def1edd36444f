"""The audit CLI: shows the stored history (newest first), readable or as JSON."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from audit.proto import audit_pb2, audit_pb2_grpc
from global_utils.auth import bearer_metadata
from global_utils.cli import add_login_arguments, run_cli, to_json
from global_utils.client import ClientSettings, find_service, open_channel
from user.client.auth import login_through_user_service

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
    )


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    token = args.token or await login_through_user_service(settings, args.email, args.password)
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
    endpoint = await find_service(SERVICE, settings, settings.serveraddress)
    async with open_channel(endpoint, tls=settings.client_tls(), server_name=SERVICE) as channel:
        reply = await audit_pb2_grpc.AuditSrvStub(channel).GetAuditRecords(
            params, metadata=bearer_metadata(token)
        )
    if args.json:
        print(to_json(reply))
        return
    for record in reply.record:
        print(line(record))
    print(f"({len(reply.record)} records{', more available' if reply.next_page_token else ''})")


def main(argv: list[str] | None = None) -> None:
    run_cli(parser(), main_async, argv)
