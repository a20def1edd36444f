"""The customer CLI: goTemp's scenario by default, single calls as subcommands printing JSON."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from customer.proto import customer_pb2, customer_pb2_grpc
from global_utils.grpc.cli import Scenario, add_login_arguments, run_cli, to_json
from global_utils.grpc.client import ClientSettings, find_service
from global_utils.identity.principal import bearer_metadata
from global_utils.runtime.timeutil import to_timestamp
from user.client.auth import login_session, session_channel

SERVICE = "customer"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m customer.client",
        description="Exercise the customer service. With no command, runs the full scenario.",
    )
    add_login_arguments(p)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("scenario", help="create, update, get, delete, get again, search")
    g = sub.add_parser("get", help="get a customer by id")
    g.add_argument("id", type=int)
    s = sub.add_parser("search", help="search customers")
    s.add_argument("--id", type=int, default=0)
    s.add_argument("--name", default="")
    s.add_argument("--valid-on", help="ISO date: customers valid on that day")
    s.add_argument("--page-size", type=int, default=0)
    s.add_argument("--page-token", default="")
    d = sub.add_parser("delete", help="delete a customer")
    d.add_argument("id", type=int)
    return p


def sample(now: datetime) -> customer_pb2.Customer:
    message = customer_pb2.Customer(
        name=f"CLI customer {uuid.uuid4().hex[:6]}",
        validity_dates=customer_pb2.ValidityDates(
            valid_from=to_timestamp(now), valid_thru=to_timestamp(now + timedelta(days=365))
        ),
    )
    message.extra_fields.update({"source": "customer CLI", "tier": 1})
    return message


def summary(record: customer_pb2.Customer) -> str:
    extra = to_json(record.extra_fields).replace("\n", "").replace("  ", "")
    return f"{record.name!r} (id {record.id}) extra fields {extra}"


async def scenario(stub: customer_pb2_grpc.CustomerSrvStub, token: str) -> None:
    run = Scenario("customer service scenario")
    md = bearer_metadata(token)
    now = datetime.now(UTC).replace(microsecond=0)
    created = await run.step("create a customer", stub.CreateCustomer(sample(now), metadata=md))
    customer_id = created.customer.id
    run.show(summary(created.customer))
    change = customer_pb2.Customer()
    change.CopyFrom(created.customer)
    change.name = f"{created.customer.name} (updated)"
    change.extra_fields.update({"tier": 2})
    updated = await run.step(
        "update its name and extra fields", stub.UpdateCustomer(change, metadata=md)
    )
    run.show(summary(updated.customer))
    got = await run.step(
        "get it by id", stub.GetCustomerById(customer_pb2.SearchId(id=customer_id), metadata=md)
    )
    run.show(f"{got.name!r}, modified by {got.modifications.modified_by}")
    await run.step(
        "delete it", stub.DeleteCustomer(customer_pb2.SearchId(id=customer_id), metadata=md)
    )
    await run.expect_error(
        "get it again",
        stub.GetCustomerById(customer_pb2.SearchId(id=customer_id), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    )
    params = customer_pb2.SearchParams(valid_date=to_timestamp(now), page_size=10)
    found = await run.step("search customers valid today", stub.GetCustomers(params, metadata=md))
    run.show(", ".join(c.name for c in found.customer) or "(none)")
    run.done()


async def single(
    args: argparse.Namespace, stub: customer_pb2_grpc.CustomerSrvStub, token: str
) -> str:
    md = bearer_metadata(token)
    match args.command:
        case "get":
            return to_json(
                await stub.GetCustomerById(customer_pb2.SearchId(id=args.id), metadata=md)
            )
        case "search":
            params = customer_pb2.SearchParams(
                id=args.id, name=args.name, page_size=args.page_size, page_token=args.page_token
            )
            if args.valid_on:
                day = datetime.fromisoformat(args.valid_on)
                params.valid_date.FromDatetime(day if day.tzinfo else day.replace(tzinfo=UTC))
            return to_json(await stub.GetCustomers(params, metadata=md))
        case "delete":
            return to_json(
                await stub.DeleteCustomer(customer_pb2.SearchId(id=args.id), metadata=md)
            )
    raise ValueError(args.command)


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    session = await login_session(settings, args.email, args.password, args.token)
    token = session.access_token
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        stub = customer_pb2_grpc.CustomerSrvStub(channel)
        if args.command in (None, "scenario"):
            print(f"logged in as {args.email or settings.cli.cli_email}")
            await scenario(stub, token)
        else:
            print(await single(args, stub, token))


def main(argv: list[str] | None = None) -> None:
    run_cli(parser(), main_async, argv)
