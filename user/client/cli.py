"""The user CLI: goTemp's scenario by default, single calls as subcommands printing JSON."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from global_utils.grpc.cli import Scenario, add_login_arguments, run_cli, to_json
from global_utils.grpc.client import ClientSettings, find_service
from global_utils.identity.principal import bearer_metadata
from global_utils.runtime.timeutil import to_timestamp
from user.client.auth import Session, session_channel
from user.proto import user_pb2, user_pb2_grpc

SERVICE = "user"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m user.client",
        description="Exercise the user service. With no command, runs the full scenario.",
    )
    add_login_arguments(p)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("scenario", help="login, create, update, get, delete, get again, search")
    sub.add_parser("login", help="print a token")
    v = sub.add_parser("validate", help="validate a token")
    v.add_argument("value")
    g = sub.add_parser("get", help="get a user by id")
    g.add_argument("id", type=int)
    s = sub.add_parser("search", help="search users (equality filters)")
    s.add_argument("--id", type=int, default=0)
    s.add_argument("--firstname", default="")
    s.add_argument("--lastname", default="")
    s.add_argument("--search-email", dest="search_email", default="")
    s.add_argument("--company", default="")
    s.add_argument("--valid-on", help="ISO date: users valid on that day")
    c = sub.add_parser("create", help="create a user")
    c.add_argument("--firstname", required=True)
    c.add_argument("--lastname", required=True)
    c.add_argument("--new-email", dest="new_email", required=True)
    c.add_argument("--new-password", dest="new_password", required=True)
    c.add_argument("--company", default="")
    c.add_argument("--inactive", action="store_true")
    d = sub.add_parser("delete", help="delete an inactive user")
    d.add_argument("id", type=int)
    return p


def _aware(day: str) -> datetime:
    parsed = datetime.fromisoformat(day)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def login(
    stub: user_pb2_grpc.UserSrvStub, email: str, password: str, session: Session
) -> str:
    """Logs in; the session then carries (and renews) the token on the CLI's calls."""
    return session.started(await stub.Auth(user_pb2.User(email=email, pwd=password)))


async def scenario(
    stub: user_pb2_grpc.UserSrvStub, email: str, password: str, session: Session
) -> None:
    run = Scenario("user service scenario")
    token = await run.step(f"login as {email}", login(stub, email, password, session))
    me = await run.step("validate the token", stub.ValidateToken(user_pb2.Token(token=token)))
    run.show(f"token belongs to user {me.e_uid}")
    md = bearer_metadata(token)
    now = datetime.now(UTC).replace(microsecond=0)
    new_email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    draft = user_pb2.User(
        firstname="Client",
        lastname="Tester",
        email=new_email,
        pwd="a-new-password",
        company="goTemp",
        active=True,
        valid_from=to_timestamp(now),
        valid_thru=to_timestamp(now + timedelta(days=365)),
    )
    created = await run.step(f"create {new_email}", stub.CreateUser(draft, metadata=md))
    user_id = created.user.id
    run.show(f"id {user_id}, name {created.user.name!r}, active {created.user.active}")
    await run.expect_error(
        "delete it while active",
        stub.DeleteUser(user_pb2.SearchId(id=user_id), metadata=md),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    change = user_pb2.User()
    change.CopyFrom(created.user)
    change.lastname = "Updated"
    change.active = False
    updated = await run.step("update lastname and deactivate", stub.UpdateUser(change, metadata=md))
    run.show(f"name {updated.user.name!r}, active {updated.user.active}")
    got = await run.step(
        "get it by id", stub.GetUserById(user_pb2.SearchId(id=user_id), metadata=md)
    )
    run.show(f"{got.name} <{got.email}>")
    await run.step("delete it", stub.DeleteUser(user_pb2.SearchId(id=user_id), metadata=md))
    await run.expect_error(
        "get it again",
        stub.GetUserById(user_pb2.SearchId(id=user_id), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    )
    found = await run.step(
        "search users valid today",
        stub.GetUsers(user_pb2.SearchParams(valid_date=to_timestamp(now)), metadata=md),
    )
    run.show(", ".join(f"{u.name} <{u.email}>" for u in found.user))
    by_email = await run.step(
        f"search by email {email}",
        stub.GetUsersByEmail(user_pb2.SearchString(value=email), metadata=md),
    )
    run.show(", ".join(u.name for u in by_email.user))
    run.done()


async def single(args: argparse.Namespace, stub: user_pb2_grpc.UserSrvStub, token: str) -> str:
    md = bearer_metadata(token)
    match args.command:
        case "login":
            return to_json(user_pb2.Token(token=token, valid=True))
        case "validate":
            return to_json(await stub.ValidateToken(user_pb2.Token(token=args.value)))
        case "get":
            return to_json(await stub.GetUserById(user_pb2.SearchId(id=args.id), metadata=md))
        case "search":
            params = user_pb2.SearchParams(
                id=args.id,
                firstname=args.firstname,
                lastname=args.lastname,
                email=args.search_email,
                company=args.company,
            )
            if args.valid_on:
                params.valid_date.FromDatetime(_aware(args.valid_on))
            return to_json(await stub.GetUsers(params, metadata=md))
        case "create":
            now = datetime.now(UTC)
            user = user_pb2.User(
                firstname=args.firstname,
                lastname=args.lastname,
                email=args.new_email,
                pwd=args.new_password,
                company=args.company,
                active=not args.inactive,
                valid_from=to_timestamp(now),
                valid_thru=to_timestamp(now + timedelta(days=365)),
            )
            return to_json(await stub.CreateUser(user, metadata=md))
        case "delete":
            return to_json(await stub.DeleteUser(user_pb2.SearchId(id=args.id), metadata=md))
    raise ValueError(args.command)


async def main_async(args: argparse.Namespace, settings: ClientSettings) -> None:
    email = args.email or settings.cli.cli_email
    endpoint = await find_service(SERVICE, settings, settings.cli.serveraddress)

    async def renew(refresh_token: str) -> user_pb2.Token:
        request = user_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        return await stub.RefreshToken(request)

    session = Session(args.token or "", renew=renew)
    async with session_channel(endpoint, SERVICE, settings, session) as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        if args.command in (None, "scenario"):
            await scenario(stub, email, settings.cli.login_password(args.password), session)
            return
        token = args.token
        if token is None and args.command != "validate":
            token = await login(stub, email, settings.cli.login_password(args.password), session)
        print(await single(args, stub, token or ""))


def main(argv: list[str] | None = None) -> None:
    run_cli(parser(), main_async, argv)
