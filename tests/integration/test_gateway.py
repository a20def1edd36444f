"""The gateway in-process in front of the in-process services (found over mDNS): Connect JSON
and binary and gRPC-Web calls reach the services with the caller's token and request id, and
come back with the services' codes, messages and details; bad requests get Connect errors;
health, metrics and the static folder."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_json_codec
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from google.rpc import error_details_pb2

from gateway import healthprobe
from gateway.host import Gateway
from gateway.settings import GatewaySettings
from global_utils.grpc.host import MAX_MESSAGE_BYTES, ServiceHost
from promotion.proto import promotion_pb2
from promotion.proto.promotion_connect import PromotionSrvClient
from tests.helpers import eventually, http_get, parse_metrics, sample
from tests.integration.conftest import SEED_EMAIL, SEED_PASSWORD, SESSION_MDNS_TYPE
from user.proto import user_pb2
from user.proto.user_connect import UserSrvClient


def gateway_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "micro_server_address": "127.0.0.1:0",
        "http_address": "127.0.0.1:0",
        "micro_registry": "mdns",
        "mdns_interfaces": "127.0.0.1",
        "mdns_service_type": SESSION_MDNS_TYPE,
        "shutdown_grace_seconds": 1,
        **overrides,
    }
    return GatewaySettings(**values)


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small built web UI: index.html and one asset."""
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text("<!doctype html><title>goTemp</title>")
    (root / "assets").mkdir()
    (root / "assets" / "app.js").write_text("console.log('hi')")
    return root


@pytest.fixture(scope="module")
async def gateway(
    user_host: ServiceHost, promotion_host: ServiceHost, audit_host: ServiceHost, web_root: Path
) -> AsyncIterator[Gateway]:
    """The gateway in front of the three services, serving web_root."""
    gateway = Gateway(gateway_settings(gateway_static_dir=str(web_root)))
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
def base_url(gateway: Gateway) -> str:
    """The gateway's public URL."""
    assert gateway.endpoint is not None
    return f"http://127.0.0.1:{gateway.endpoint.port}"


async def http(
    gateway: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request to the gateway: (status, headers, body)."""
    assert gateway.endpoint is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.endpoint.port)
    head = {"host": "gateway", "connection": "close", "content-length": str(len(body))}
    head.update(headers or {})
    writer.write(
        f"{method} {path} HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
        + b"\r\n"
        + body
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    raw_head, _, content = response.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    if fields.get("transfer-encoding") == "chunked":
        content = dechunk(content)
    return int(lines[0].split(" ")[1]), fields, content


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


async def connect_json(
    gateway: Gateway, procedure: str, message: dict[str, Any], **headers: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    status, fields, body = await http(
        gateway,
        "POST",
        f"/{procedure}",
        json.dumps(message).encode(),
        {"content-type": "application/json", **headers},
    )
    return status, fields, json.loads(body)


async def login(gateway: Gateway) -> str:
    status, _, reply = await connect_json(
        gateway, "user.UserSrv/Auth", {"email": SEED_EMAIL, "pwd": SEED_PASSWORD}
    )
    assert status == 200, reply
    return str(reply["token"])


# --- calls through the gateway ------------------------------------------------------------


async def test_connect_json_call_reaches_the_service_with_the_token(gateway: Gateway) -> None:
    token = await login(gateway)
    status, fields, reply = await connect_json(
        gateway,
        "user.UserSrv/GetUsersByEmail",
        {"value": SEED_EMAIL},
        authorization=f"Bearer {token}",
        **{"x-request-id": "gw-test-1"},
    )
    assert status == 200, reply
    assert [user["email"] for user in reply["user"]] == [SEED_EMAIL]
    assert fields["x-request-id"] == "gw-test-1"


async def test_gotemps_token_header_is_forwarded_too(gateway: Gateway) -> None:
    token = await login(gateway)
    status, _, reply = await connect_json(
        gateway, "user.UserSrv/GetUsersByEmail", {"value": SEED_EMAIL}, token=token
    )
    assert status == 200, reply


@pytest.mark.parametrize("protocol", [ProtocolType.CONNECT, ProtocolType.GRPC_WEB])
async def test_generated_clients_call_through_the_gateway(
    gateway: Gateway, base_url: str, protocol: ProtocolType
) -> None:
    users = UserSrvClient(base_url, protocol=protocol)
    token = (await users.auth(user_pb2.User(email=SEED_EMAIL, pwd=SEED_PASSWORD))).token
    promotions = PromotionSrvClient(base_url, protocol=protocol)
    found = await promotions.get_promotions(
        promotion_pb2.SearchParams(name="Promo1"),
        headers={"authorization": f"Bearer {token}"},
    )
    assert [p.name for p in found.promotion] == ["Promo1"]
    with pytest.raises(ConnectError) as refused:
        await promotions.get_promotions(promotion_pb2.SearchParams(name="Promo1"))
    assert refused.value.code is Code.UNAUTHENTICATED


@pytest.mark.parametrize("protocol", [ProtocolType.CONNECT, ProtocolType.GRPC_WEB])
async def test_field_violations_come_back_as_error_details(
    gateway: Gateway, base_url: str, protocol: ProtocolType
) -> None:
    users = UserSrvClient(base_url, protocol=protocol, codec=google_protobuf_json_codec())
    token = (await users.auth(user_pb2.User(email=SEED_EMAIL, pwd=SEED_PASSWORD))).token
    with pytest.raises(ConnectError) as refused:
        await users.create_user(
            user_pb2.User(email="not-an-email"), headers={"authorization": f"Bearer {token}"}
        )
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert refused.value.message
    [detail] = refused.value.details
    assert detail.type_name == "google.rpc.BadRequest"
    violations = error_details_pb2.BadRequest.FromString(detail.message_bytes).field_violations
    assert "email" in {violation.field for violation in violations}


async def test_connect_json_error_carries_the_details(gateway: Gateway) -> None:
    token = await login(gateway)
    status, fields, reply = await connect_json(
        gateway,
        "user.UserSrv/CreateUser",
        {"email": "not-an-email"},
        authorization=f"Bearer {token}",
    )
    assert status == 400
    assert reply["code"] == "invalid_argument"
    assert fields["x-request-id"]
    [detail] = reply["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    violations = error_details_pb2.BadRequest.FromString(
        base64.b64decode(detail["value"] + "==")
    ).field_violations
    assert "email" in {violation.field for violation in violations}


async def test_not_found_and_bad_token_keep_their_codes(gateway: Gateway) -> None:
    token = await login(gateway)
    status, _, reply = await connect_json(
        gateway, "user.UserSrv/GetUserById", {"id": "999999999"}, authorization=f"Bearer {token}"
    )
    assert (status, reply["code"]) == (404, "not_found")
    status, _, reply = await connect_json(
        gateway, "user.UserSrv/GetUserById", {"id": "1"}, authorization="Bearer not.a.token"
    )
    assert (status, reply["code"]) == (401, "unauthenticated")


# --- requests the gateway cannot pass on ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"{not json", "application/json", "invalid_argument"),
        (b'{"email": {"not": "a string"}}', "application/json", "invalid_argument"),
        (b"\xff\xff\xff", "application/proto", "invalid_argument"),
    ],
)
async def test_unparsable_requests_get_a_connect_error(
    gateway: Gateway, body: bytes, content_type: str, code: str
) -> None:
    status, fields, reply = await http(
        gateway, "POST", "/user.UserSrv/Auth", body, {"content-type": content_type}
    )
    assert status == 400
    assert fields["content-type"] == "application/json"
    error = json.loads(reply)
    assert error["code"] == code
    assert "Traceback" not in error.get("message", "")


async def test_unknown_procedures_and_media_types_are_refused(gateway: Gateway) -> None:
    status, _, reply = await http(
        gateway, "POST", "/user.UserSrv/NoSuchMethod", b"{}", {"content-type": "application/json"}
    )
    assert status == 404
    status, _, reply = await http(
        gateway, "POST", "/nosuch.Service/Call", b"{}", {"content-type": "application/json"}
    )
    assert status == 404 and json.loads(reply)["code"] == "unimplemented"
    status, _, _ = await http(
        gateway, "POST", "/user.UserSrv/Auth", b"x", {"content-type": "text/plain"}
    )
    assert status == 415


async def test_a_body_over_the_services_limit_is_refused(gateway: Gateway) -> None:
    big = json.dumps({"email": "x" * (MAX_MESSAGE_BYTES + 10)}).encode()
    status, _, reply = await http(
        gateway, "POST", "/user.UserSrv/Auth", big, {"content-type": "application/json"}
    )
    assert status == 429 or json.loads(reply)["code"] == "resource_exhausted", reply[:200]


async def test_an_expired_deadline_is_deadline_exceeded(gateway: Gateway) -> None:
    status, _, reply = await http(
        gateway,
        "POST",
        "/user.UserSrv/Auth",
        b"{}",
        {"content-type": "application/json", "connect-timeout-ms": "0"},
    )
    assert json.loads(reply)["code"] == "deadline_exceeded", (status, reply)


# --- health, metrics, static files ---------------------------------------------------------


async def test_healthz_and_grpc_health(gateway: Gateway) -> None:
    status, _, body = await http(gateway, "GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "SERVING"})
    for service in ("", "user.UserSrv", "audit.AuditSrv"):
        status, _, reply = await connect_json(
            gateway, "grpc.health.v1.Health/Check", {"service": service}
        )
        assert (status, reply) == (200, {"status": "SERVING"}), service


async def test_metrics_are_on_the_side_port_only(gateway: Gateway) -> None:
    await login(gateway)
    status_line, body = await http_get(gateway.http.endpoint.port, "/metrics")  # type: ignore[union-attr]  # started
    assert "200" in status_line
    samples = parse_metrics(body.decode())
    handled = sample(
        samples,
        "grpc_server_handled_total",
        grpc_type="unary",
        grpc_service="user.UserSrv",
        grpc_method="Auth",
        grpc_code="OK",
    )
    assert handled is not None and handled >= 1
    client = sample(
        samples,
        "grpc_client_handled_total",
        grpc_type="unary",
        grpc_service="user.UserSrv",
        grpc_method="Auth",
        grpc_code="OK",
    )
    assert client is not None and client >= 1
    # the public port's unknown paths are the web UI's (its index.html), never the metrics
    status, _, page = await http(gateway, "GET", "/metrics")
    assert b"grpc_server" not in page


@pytest.mark.parametrize(
    ("path", "status", "content"),
    [
        ("/", 200, b"<title>goTemp</title>"),
        ("/assets/app.js", 200, b"console.log"),
        ("/users/42", 200, b"<title>goTemp</title>"),
        ("/assets/missing.js", 404, b"not found"),
        # nothing outside the folder
        ("/../../etc/passwd", 404, b"not found"),
        ("/assets/../../../etc/hostname", 404, b"not found"),
    ],
)
async def test_the_static_folder_with_spa_fallback(
    gateway: Gateway, path: str, status: int, content: bytes
) -> None:
    got, fields, body = await http(gateway, "GET", path)
    assert got == status
    assert content in body
    if path == "/assets/app.js":
        assert fields["content-type"].startswith("text/javascript")


async def test_without_a_static_folder_only_the_api_is_served(
    user_host: ServiceHost,
) -> None:
    bare = Gateway(gateway_settings())
    await bare.start()
    try:
        status, _, _ = await http(bare, "GET", "/")
        assert status == 404
        status, _, body = await http(bare, "GET", "/healthz")
        assert status == 200
    finally:
        await bare.stop()
    assert not bare.health.serving


def test_a_static_folder_without_index_html_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="index.html"):
        gateway_settings(gateway_static_dir=str(tmp_path))


async def test_the_container_health_probe_follows_healthz(user_host: ServiceHost) -> None:
    probed = Gateway(gateway_settings())
    await probed.start()
    assert probed.endpoint is not None
    port = str(probed.endpoint.port)
    try:
        assert await asyncio.to_thread(healthprobe.main, ["healthprobe", port]) == 0
    finally:
        await probed.stop()
    assert await asyncio.to_thread(healthprobe.main, ["healthprobe", port]) == 1


async def test_headers_it_cannot_read_get_a_connect_error(gateway: Gateway) -> None:
    assert gateway.endpoint is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.endpoint.port)
    writer.write(
        b"POST /user.UserSrv/Auth HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        b"content-type: application/json\r\nauthorization: Bearer \xff\xfe\r\n"
        b"content-length: 2\r\n\r\n{}"
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 400 ")
    assert json.loads(response.partition(b"\r\n\r\n")[2]) == {
        "code": "invalid_argument",
        "message": "request headers must be UTF-8",
    }
    status, _, reply = await connect_json(
        gateway, "user.UserSrv/GetUsers", {}, authorization="Bearer caf\u00e9"
    )
    assert (status, reply["code"]) == (400, "invalid_argument")


async def test_a_stop_lets_the_call_in_flight_finish(user_host: ServiceHost) -> None:
    stopping = Gateway(gateway_settings(shutdown_grace_seconds=5))
    await stopping.start()
    assert stopping.endpoint is not None
    body = json.dumps({"email": SEED_EMAIL, "pwd": SEED_PASSWORD}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", stopping.endpoint.port)
    # the request's head and part of its body: the call has begun but cannot finish yet
    writer.write(
        b"POST /user.UserSrv/Auth HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    await writer.drain()
    await eventually(lambda: _true(stopping.app.calls_in_flight == 1), 10, "the call to begin")
    stop = asyncio.create_task(stopping.stop())
    await eventually(lambda: _true(not stopping.health.serving), 10, "the stop to begin")
    writer.write(body[10:])
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await asyncio.wait_for(stop, 10)
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    assert b'"token"' in response
    # and nothing is served any more
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", stopping.endpoint.port)


async def _true(value: bool) -> bool:
    return value
