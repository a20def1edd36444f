"""The product CLI: goTemp's scenario by default, single calls as subcommands printing JSON."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from global_utils.grpc.cli import Scenario, add_login_arguments, run_cli, to_json
from global_utils.grpc.client import ClientSettings, find_service
from global_utils.identity.principal import bearer_metadata
from global_utils.runtime.timeutil import to_timestamp
from product.proto import product_pb2, product_pb2_grpc
from user.client.auth import login_session, session_channel

SERVICE = "product"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m product.client",
        description="Exercise the product service. With no command, runs the full scenario.",
    )
    add_login_arguments(p)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("scenario", help="create, update, get, delete, get again, search")
    g = sub.add_parser("get", help="get a product by id")
    g.add_argument("id", type=int)
    s = sub.add_parser("search", help="search products")
    s.add_argument("--id", type=int, default=0)
    s.add_argument("--name", default="")
    s.add_argument("--valid-on", help="ISO date: products valid on that day")
    s.add_argument("--page-size", type=int, default=0)
    s.add_argument("--page-token", default="")
    d = sub.add_parser("delete", help="delete a product")
    d.add_argument("id", type=int)
    return p


def sample(now: datetime) -> product_pb2.Product:
    message = product_pb2.Product(
        name=f"CLI product {uuid.uuid4().hex[:6]}",
        hierarchy_level="SKU",
        validity_dates=product_pb2.ValidityDates(
            valid_from=to_timestamp(now), valid_thru=to_timestamp(now + timedelta(days=365))
        ),
    )
    message.extra_fields.update({"source": "product CLI", "tier": 1})
    return message


def summary(record: product_pb2.Product) -> str:
    extra = to_json(record.extra_fields).replace("\n", "").replace("  ", "")
    level = record.hierarchy_level
    return f"{record.name!r} (id {record.id}, level {level}) extra fields {extra}"


async def scenario(stub: product_pb2_grpc.ProductSrvStub, token: str) -> None:
    run = Scenario("product service scenario")
    md = bearer_metadata(token)
    now = datetime.now(UTC).replace(microsecond=0)
    created = await run.step("create a product", stub.CreateProduct(sample(now), metadata=md))
    product_id = created.product.id
    run.show(summary(created.product))
    change = product_pb2.Product()
    change.CopyFrom(created.product)
    change.name = f"{created.product.name} (updated)"
    change.hierarchy_level = "brand"
    change.extra_fields.update({"tier": 2})
    updated = await run.step(
        "update its name, hierarchy level and extra fields", stub.UpdateProduct(change, metadata=md)
    )
    run.show(summary(updated.product))
    got = await run.step(
        "get it by id", stub.GetProductById(product_pb2.SearchId(id=product_id), metadata=md)
    )
    run.show(f"{got.name!r}, modified by {got.modifications.modified_by}")
    await run.step(
        "delete it", stub.DeleteProduct(product_pb2.SearchId(id=product_id), metadata=md)
    )
    await run.expect_error(
        "get it again",
        stub.GetProductById(product_pb2.SearchId(id=product_id), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    )
    params = product_pb2.SearchParams(valid_date=to_timestamp(now), page_size=10)
    found = await run.step("search products valid today", stub.GetProducts(params, metadata=md))
    run.show(", ".join(c.name for c in found.product) or "(none)")
    run.done()


async def single(
    args: argparse.Namespace, stub: product_pb2_grpc.ProductSrvStub, token: str
) -> str:
    md = bearer_metadata(token)
    match args.command:
        case "get":
            return to_json(await stub.GetProductById(product_pb2.SearchId(id=args.id), metadata=md))
        case "search":
            params = product_pb2.SearchParams(
                id=args.id, name=args.name, page_size=args.page_size, page_token=args.page_token
            )
            if args.valid_on:
                day = datetime.fromisoformat(args.valid_on)
                params.valid_date.FromDatetime(day if day.tzinfo else day.replace(tzinfo=UTC))
            return to_json(await stub.GetProducts(params, metadata=md))
        case "delete":
            return to_json(await stub.DeleteProduct(product_pb2.SearchId(id=args.id), metadata=md))
    raise ValueError(args.command)


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    session = await login_session(settings, args.email, args.password, args.token)
    token = session.access_token
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        stub = product_pb2_grpc.ProductSrvStub(channel)
        if args.command in (None, "scenario"):
            print(f"logged in as {args.email or settings.cli.cli_email}")
            await scenario(stub, token)
        else:
            print(await single(args, stub, token))


def main(argv: list[str] | None = None) -> None:
    run_cli(parser(), main_async, argv)
