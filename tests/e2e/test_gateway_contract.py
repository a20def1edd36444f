"""The gateway's contract: for every RPC of every service of the suite (from the services'
descriptors, so a new service is covered without a change here), the same call over gRPC
(grpcurl, straight to the service), over Connect JSON (the real curl, through the gateway)
and over gRPC-Web (connectrpc's client, through the gateway) ends with the same status code,
message and error details, and, when it succeeds, the same answer. Each RPC is called
without a token, with a bad one, with an admin's token and an empty request (the services'
field violations for writes), and with an admin's token and an id nobody has (not found)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from connectrpc.client import ConnectClient
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType
from google.protobuf import any_pb2, descriptor_pool, json_format, symbol_database
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2  # noqa: F401  # registers the detail types for Any

from devtools.dev_secrets import NatsKeys
from devtools.processes import ServiceProcess
from devtools.run import plan
from devtools.stack import EmbeddedNats, EmbeddedPostgres, free_port
from gateway.forwarding import CONNECT_CODES
from gateway.suite_services import SERVICES
from tests.e2e.conftest import base_env

GRPCURL = shutil.which("grpcurl") or str(Path(sys.prefix) / "bin" / "grpcurl")
CURL = shutil.which("curl") or "/usr/bin/curl"
SEED_LOGIN = {"email": "duck@mymail.com", "pwd": "1234"}
UNKNOWN_ID = "987654321"
BAD_TOKEN = "Bearer not.a.token"
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
CODE_BY_CONNECT_NAME = {code.value: status for status, code in CONNECT_CODES.items()}


@dataclass(frozen=True)
class Outcome:
    """How a call ended, in transport-neutral terms: the code's name, the status message, the
    error details (each as its type and its message's JSON) and the answer's JSON."""

    code: str
    message: str = ""
    details: tuple[str, ...] = ()
    answer: str = ""

    def shape(self) -> Outcome:
        """The outcome without the answer's values, only which fields it has (for answers that
        change from one call to the next: fresh tokens, a history that grows)."""
        return Outcome(self.code, self.message, self.details, _shape(self.answer))


def _shape(answer: str) -> str:
    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: keys(item) for key, item in sorted(value.items())}
        if isinstance(value, list):
            return [keys(value[0])] if value else []
        return type(value).__name__

    return json.dumps(keys(json.loads(answer))) if answer else ""


def _canonical(message: Message) -> str:
    return json.dumps(json_format.MessageToDict(message), sort_keys=True)


def _detail_json(type_name: str, value: bytes) -> str:
    detail = symbol_database.Default().GetSymbol(type_name)()
    detail.ParseFromString(value)
    return f"{type_name} {_canonical(detail)}"


# --- the three clients -----------------------------------------------------------------------


def over_grpcurl(
    address: str, method: MethodDescriptor, body: dict[str, Any], headers: dict[str, str]
) -> Outcome:
    args = [GRPCURL, "-plaintext", "-format-error", "-format", "json"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    full = f"{method.containing_service.full_name}/{method.name}"
    reply = subprocess.run(
        [*args, "-d", json.dumps(body), address, full], capture_output=True, text=True, timeout=30
    )
    output_class = GetMessageClass(method.output_type)
    if reply.returncode == 0:
        return Outcome("OK", answer=_canonical(json_format.Parse(reply.stdout, output_class())))
    status = json.loads(reply.stdout or reply.stderr)
    details = []
    for detail in status.get("details", []):
        packed = any_pb2.Any()
        json_format.ParseDict(detail, packed)
        type_name = packed.type_url.rsplit("/", 1)[-1]
        details.append(_detail_json(type_name, packed.value))
    return Outcome(
        CODE_BY_NUMBER[status.get("code", 2)].name, status.get("message", ""), tuple(details)
    )


def over_curl(
    base_url: str, method: MethodDescriptor, body: dict[str, Any], headers: dict[str, str]
) -> Outcome:
    args = [CURL, "-sS", "-X", "POST", "-H", "content-type: application/json"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    url = f"{base_url}/{method.containing_service.full_name}/{method.name}"
    reply = subprocess.run(
        [*args, "--data-binary", json.dumps(body), "-w", "\n%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert reply.returncode == 0, reply.stderr
    text, _, status = reply.stdout.rpartition("\n")
    output_class = GetMessageClass(method.output_type)
    if status == "200":
        return Outcome("OK", answer=_canonical(json_format.Parse(text, output_class())))
    error = json.loads(text)
    details = tuple(
        _detail_json(detail["type"], base64.b64decode(detail["value"] + "=" * 3))
        for detail in error.get("details", [])
    )
    return Outcome(CODE_BY_CONNECT_NAME[error["code"]].name, error.get("message", ""), details)


async def over_grpc_web(
    base_url: str, method: MethodDescriptor, body: dict[str, Any], headers: dict[str, str]
) -> Outcome:
    input_class = GetMessageClass(method.input_type)
    output_class = GetMessageClass(method.output_type)
    client = ConnectClient(
        base_url, protocol=ProtocolType.GRPC_WEB, codec=google_protobuf_binary_codec()
    )
    info = MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=input_class,
        output=output_class,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )
    request = json_format.ParseDict(body, input_class())
    try:
        answer = await client.execute_unary(request=request, method=info, headers=headers)
    except ConnectError as error:
        details = tuple(_detail_json(d.type_name, d.message_bytes) for d in error.details)
        return Outcome(CODE_BY_CONNECT_NAME[error.code.value].name, error.message, details)
    return Outcome("OK", answer=_canonical(answer))


# --- the suite, the gateway, the calls -------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    addresses: dict[str, str]  # by full proto service name
    gateway_url: str


@pytest.fixture
def suite(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    mdns_type: str,
    start_process: Callable[[str, dict[str, str]], ServiceProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> Suite:
    """Every service of the suite as a process (as make run starts them), and the gateway
    finding them through the static registry."""
    for fronted in SERVICES:
        monkeypatch.setenv(f"{fronted.name.upper()}_PORT", str(free_port()))
    extra = base_env() | {
        "MDNS_SERVICE_TYPE": mdns_type,
        "BCRYPT_ROUNDS": "4",
        # the same failed login is tried many times here: throttling would answer differently
        # from one transport to the next
        "LOGIN_THROTTLE_ATTEMPTS": "1000000",
    }
    planned = plan(postgres, nats_server, extra, nats_keys)
    processes = {service.name: start_process(service.module, service.env) for service in planned}
    for name, process in processes.items():
        process.wait_for_line(f"{name} ready", timeout=60)
    gateway_port = free_port()
    gateway = start_process(
        "gateway",
        base_env()
        | {
            "MICRO_SERVER_ADDRESS": f"127.0.0.1:{gateway_port}",
            "HTTP_ADDRESS": "127.0.0.1:0",
            "MICRO_REGISTRY": "static",
            "MICRO_REGISTRY_ADDRESS": ",".join(f"{s.name}={s.address}" for s in planned),
        },
    )
    gateway.wait_for_line("gateway ready", timeout=60)
    return Suite(
        {service.grpc_service: service.address for service in planned},
        f"http://127.0.0.1:{gateway_port}",
    )


def every_rpc() -> list[tuple[ServiceDescriptor, MethodDescriptor]]:
    pool = descriptor_pool.Default()
    return [
        (descriptor, method)
        for fronted in SERVICES
        for descriptor in [pool.FindServiceByName(fronted.grpc_service)]
        for method in descriptor.methods
        if not method.client_streaming and not method.server_streaming
    ]


def admin_token(address: str) -> str:
    reply = subprocess.run(
        [GRPCURL, "-plaintext", "-d", json.dumps(SEED_LOGIN), address, "user.UserSrv/Auth"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert reply.returncode == 0, reply.stderr
    return str(json.loads(reply.stdout)["token"])


def cases(method: MethodDescriptor, token: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(what, request, headers) for one RPC."""
    admin = {"authorization": f"Bearer {token}"}
    found: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("no token", {}, {}),
        ("bad token", {}, {"authorization": BAD_TOKEN}),
        ("empty request", {}, admin),
    ]
    if "id" in method.input_type.fields_by_name:
        found.append(("unknown id", {"id": UNKNOWN_ID}, admin))
    return found


async def test_every_rpc_answers_alike_over_grpc_connect_and_grpc_web(suite: Suite) -> None:
    rpcs = every_rpc()
    # every service of the suite, and with it every method its descriptor lists
    assert {service.full_name for service, _ in rpcs} == {s.grpc_service for s in SERVICES}
    issuer = next(s for s in SERVICES if s.grpc_service == "user.UserSrv")
    token = admin_token(suite.addresses[issuer.grpc_service])
    seen_codes: set[str] = set()
    seen_details = False
    for service, method in rpcs:
        address = suite.addresses[service.full_name]
        for what, body, headers in cases(method, token):
            label = f"{service.full_name}/{method.name} ({what})"
            first = await asyncio.to_thread(over_grpcurl, address, method, body, headers)
            connect = await asyncio.to_thread(over_curl, suite.gateway_url, method, body, headers)
            web = await over_grpc_web(suite.gateway_url, method, body, headers)
            if connect != first or web != first:
                # allowed only where gRPC itself answers differently from one call to the
                # next (fresh tokens, a growing history): then the same code, message,
                # details and fields
                again = await asyncio.to_thread(over_grpcurl, address, method, body, headers)
                assert first != again, f"{label}: {first} over gRPC, {connect} over Connect"
                assert first.shape() == again.shape(), label
                assert connect.shape() == first.shape(), f"{label}: Connect JSON differs"
                assert web.shape() == first.shape(), f"{label}: gRPC-Web differs"
            seen_codes.add(first.code)
            seen_details = seen_details or any("fieldViolations" in d for d in first.details)
    # the refusals the contract is about did occur (and matched) somewhere in the suite
    assert {"OK", "UNAUTHENTICATED", "INVALID_ARGUMENT", "NOT_FOUND"} <= seen_codes, seen_codes
    assert seen_details, "no field violations came back"
