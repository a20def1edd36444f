"""The promotion CLI: goTemp's scenario by default, single calls as subcommands printing JSON."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from global_utils.grpc.cli import Scenario, add_login_arguments, run_cli, to_json
from global_utils.grpc.client import ClientSettings, find_service
from global_utils.identity.principal import bearer_metadata
from global_utils.runtime.timeutil import to_timestamp
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from user.client.auth import login_session, session_channel

SERVICE = "promotion"
SEED_CUSTOMER = 3308341401806443521


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m promotion.client",
        description="Exercise the promotion service. With no command, runs the full scenario.",
    )
    add_login_arguments(p)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("scenario", help="create, update, get, delete, get again, search")
    g = sub.add_parser("get", help="get a promotion by id")
    g.add_argument("id", type=int)
    s = sub.add_parser("search", help="search promotions")
    s.add_argument("--id", type=int, default=0)
    s.add_argument("--name", default="")
    s.add_argument("--customer-id", type=int, default=0)
    s.add_argument("--product-id", type=int, default=0)
    s.add_argument("--valid-on", help="ISO date: promotions valid on that day")
    d = sub.add_parser("delete", help="delete a promotion in its initial approval status")
    d.add_argument("id", type=int)
    return p


def sample_promotion(now: datetime) -> promotion_pb2.Promotion:
    return promotion_pb2.Promotion(
        name=f"CLI promo {uuid.uuid4().hex[:6]}",
        description="created by the promotion CLI",
        customer_id=SEED_CUSTOMER,
        active=True,
        valid_from=to_timestamp(now),
        valid_thru=to_timestamp(now + timedelta(days=30)),
        product=[
            promotion_pb2.Product(
                id=5001,
                upc_code="036000291452",
                discount=[
                    promotion_pb2.Discount(
                        value=15, type=promotion_pb2.DISCOUNT_TYPE_PERCENTAGE, description="15% off"
                    ),
                    promotion_pb2.Discount(
                        value=2.5, type=promotion_pb2.DISCOUNT_TYPE_AMOUNT, description="2.50 off"
                    ),
                ],
            ),
            promotion_pb2.Product(
                id=5002,
                upc_code="042100005264",
                discount=[
                    promotion_pb2.Discount(
                        value=50,
                        type=promotion_pb2.DISCOUNT_TYPE_PERCENTAGE,
                        description="half price",
                    )
                ],
            ),
        ],
    )


def summary(promotion: promotion_pb2.Promotion) -> str:
    products = "; ".join(
        f"product {p.id}: " + ", ".join(d.description or str(d.value) for d in p.discount)
        for p in promotion.product
    )
    return f"{promotion.name!r} (id {promotion.id}) {products}"


async def scenario(stub: promotion_pb2_grpc.PromotionSrvStub, token: str) -> None:
    run = Scenario("promotion service scenario")
    md = bearer_metadata(token)
    now = datetime.now(UTC).replace(microsecond=0)
    draft = sample_promotion(now)
    created = await run.step(
        "create a promotion with two products", stub.CreatePromotion(draft, metadata=md)
    )
    promotion_id = created.promotion.id
    run.show(summary(created.promotion))
    change = promotion_pb2.Promotion()
    change.CopyFrom(created.promotion)
    change.description = "updated by the promotion CLI"
    change.product[1].discount[0].value = 60
    change.product[1].discount[0].description = "60% off"
    updated = await run.step(
        "update description and a discount", stub.UpdatePromotion(change, metadata=md)
    )
    run.show(summary(updated.promotion))
    got = await run.step(
        "get it by id",
        stub.GetPromotionById(promotion_pb2.SearchId(id=promotion_id), metadata=md),
    )
    run.show(f"{got.description!r}, {len(got.product)} products")
    await run.step(
        "delete it", stub.DeletePromotion(promotion_pb2.SearchId(id=promotion_id), metadata=md)
    )
    await run.expect_error(
        "get it again",
        stub.GetPromotionById(promotion_pb2.SearchId(id=promotion_id), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    )
    found = await run.step(
        f"search customer {SEED_CUSTOMER}",
        stub.GetPromotions(promotion_pb2.SearchParams(customer_id=SEED_CUSTOMER), metadata=md),
    )
    run.show(", ".join(p.name for p in found.promotion))
    run.done()


async def single(
    args: argparse.Namespace, stub: promotion_pb2_grpc.PromotionSrvStub, token: str
) -> str:
    md = bearer_metadata(token)
    match args.command:
        case "get":
            request = promotion_pb2.SearchId(id=args.id)
            return to_json(await stub.GetPromotionById(request, metadata=md))
        case "search":
            params = promotion_pb2.SearchParams(
                id=args.id,
                name=args.name,
                customer_id=args.customer_id,
                product_id=args.product_id,
            )
            if args.valid_on:
                day = datetime.fromisoformat(args.valid_on)
                params.valid_date.FromDatetime(day if day.tzinfo else day.replace(tzinfo=UTC))
            return to_json(await stub.GetPromotions(params, metadata=md))
        case "delete":
            request = promotion_pb2.SearchId(id=args.id)
            return to_json(await stub.DeletePromotion(request, metadata=md))
    raise ValueError(args.command)


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    session = await login_session(settings, args.email, args.password, args.token)
    token = session.access_token
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        if args.command in (None, "scenario"):
            print(f"logged in as {args.email or settings.cli.cli_email}")
            await scenario(stub, token)
        else:
            print(await single(args, stub, token))


def main(argv: list[str] | None = None) -> None:
    run_cli(parser(), main_async, argv)
