"""Helpers every CLI shares: readable scenario steps, JSON output, error reporting."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from global_errors import DomainError
from global_utils.config.loading import load_settings
from global_utils.grpc.client import ClientSettings

T = TypeVar("T")


class StepFailed(Exception):
    """A scenario step did not do what it should."""


def to_json(message: Message) -> str:
    return MessageToJson(message, indent=2, preserving_proto_field_name=False)


def describe_rpc_error(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


class Scenario:
    """Numbered, readable steps; the first unexpected failure stops the run."""

    def __init__(self, title: str) -> None:
        self._count = 0
        print(f"== {title}")

    async def step(self, title: str, call: Awaitable[T]) -> T:
        self._count += 1
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            print(f"[{self._count}] {title}: FAILED {describe_rpc_error(exc)}")
            raise StepFailed(title) from exc
        print(f"[{self._count}] {title}: ok")
        return result

    async def expect_error(
        self, title: str, call: Awaitable[object], code: grpc.StatusCode
    ) -> None:
        self._count += 1
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == code:
                print(f"[{self._count}] {title}: ok ({describe_rpc_error(exc)}, as expected)")
                return
            print(f"[{self._count}] {title}: FAILED {describe_rpc_error(exc)}")
            raise StepFailed(title) from exc
        print(f"[{self._count}] {title}: FAILED (expected {code.name}, got a result)")
        raise StepFailed(title)

    def show(self, text: str) -> None:
        for line in text.splitlines():
            print(f"      {line}")

    def done(self) -> None:
        print(f"== all {self._count} steps passed")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    """The login options every CLI has."""
    parser.add_argument("--email", help="login email (default: CLI_EMAIL or duck@mymail.com)")
    parser.add_argument("--password", help="login password (default: CLI_PASSWORD)")
    parser.add_argument("--token", help="use this token instead of logging in")


def run_cli(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace, ClientSettings], Coroutine[Any, Any, None]],
    argv: list[str] | None = None,
) -> None:
    """Parses argv and the environment, runs a CLI's async main; failures become one
    `error: ...` line and exit status 1."""
    args = parser.parse_args(argv)
    settings = load_settings(ClientSettings)
    try:
        asyncio.run(main(args, settings))
    except StepFailed as exc:
        fail(f"scenario stopped at: {exc}")
    except grpc.aio.AioRpcError as exc:
        fail(describe_rpc_error(exc))
    except DomainError as exc:
        fail(str(exc))
