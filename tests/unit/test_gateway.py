"""The gateway's own pieces without a server: status mapping, deadlines, static paths, the
generated list of fronted services."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from connectrpc.code import Code
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from devtools.suite import load_suite
from gateway.app import GatewayApp, HealthState, StaticFiles
from gateway.forwarding import CONNECT_CODES, STATUS_DETAILS_KEY, connect_error, local_error
from gateway.suite_services import SERVICES
from global_errors import Language
from global_errors.errors import Unavailable
from global_errors.messages import MessageKey


def test_every_grpc_code_maps_to_the_connect_code_of_the_same_name() -> None:
    assert set(CONNECT_CODES) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert CONNECT_CODES[grpc.StatusCode.CANCELLED] is Code.CANCELED
    for status, code in CONNECT_CODES.items():
        if status is not grpc.StatusCode.CANCELLED:
            assert code.name == status.name


def test_status_details_become_connect_details_of_the_same_type() -> None:
    violation = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="email", description="bad")
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(violation)
    status = status_pb2.Status(code=3, message="invalid", details=[packed])
    error = connect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid",
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
    )
    assert (error.code, error.message) == (Code.INVALID_ARGUMENT, "invalid")
    [detail] = error.details
    assert detail.type_name == "google.rpc.BadRequest"
    assert error_details_pb2.BadRequest.FromString(detail.message_bytes) == violation


def test_an_unreadable_details_trailer_keeps_code_and_message() -> None:
    error = connect_error(
        grpc.StatusCode.NOT_FOUND, "gone", grpc.aio.Metadata((STATUS_DETAILS_KEY, b"\xff\x00"))
    )
    assert (error.code, error.message, list(error.details)) == (Code.NOT_FOUND, "gone", [])


def test_errors_met_in_the_gateway_read_as_the_services_would_say_them() -> None:
    unavailable = local_error(
        Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="user service"), Language.EN
    )
    assert unavailable.code is Code.UNAVAILABLE and "user service" in unavailable.message
    internal = local_error(RuntimeError("secret detail"), Language.EN)
    assert internal.code is Code.INTERNAL and "secret detail" not in internal.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (b"connect-timeout-ms", b"30000")),
        ({b"connect-timeout-ms": b"500"}, (b"connect-timeout-ms", b"500")),
        ({b"connect-timeout-ms": b"99999999"}, (b"connect-timeout-ms", b"30000")),
        ({b"content-type": b"application/grpc-web+proto"}, (b"grpc-timeout", b"30000m")),
        (
            {b"content-type": b"application/grpc-web+proto", b"grpc-timeout": b"2S"},
            (b"grpc-timeout", b"2S"),
        ),
        (
            {b"content-type": b"application/grpc-web+proto", b"grpc-timeout": b"1H"},
            (b"grpc-timeout", b"30000m"),
        ),
    ],
)
def test_every_call_gets_at_most_the_gateways_deadline(
    headers: dict[bytes, bytes], expected: tuple[bytes, bytes]
) -> None:
    app = GatewayApp([], HealthState(), max_timeout_ms=30000)
    scope = app._with_deadline({"headers": list(headers.items())})
    name, value = expected
    assert [v for k, v in scope["headers"] if k == name] == [value]


def test_static_files_stay_inside_their_folder(tmp_path: Path) -> None:
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("index")
    (root / "assets" / "a.css").write_text("css")
    (tmp_path / "secret.txt").write_text("no")
    files = StaticFiles(root)
    assert files.find("/") == (root / "index.html").resolve()
    assert files.find("/assets/a.css") == (root / "assets" / "a.css").resolve()
    assert files.find("/promotions/7/edit") == root.resolve() / "index.html"
    assert files.find("/assets/b.css") is None
    assert files.find("/../secret.txt") is None


def test_the_gateway_fronts_every_service_of_the_suite() -> None:
    suite = load_suite()
    assert [(s.name, s.grpc_service) for s in SERVICES] == [
        (s.name, s.grpc_service) for s in suite.services
    ]
    for service in SERVICES:
        assert (
            service.application_class.__module__ == f"{service.name}.proto.{service.name}_connect"
        )
