"""A request body that does not parse is INVALID_ARGUMENT on every method, checked after
authentication, with at most one warning and no traceback in the service log."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from audit.proto import audit_pb2
from global_utils.grpc.host import ServiceHost
from promotion.proto import promotion_pb2
from tests.helpers import serving
from user.proto import user_pb2
from user.server.bootstrap import build
from user.server.settings import UserSettings

HOST_OF_MODULE = (
    ("user_host", user_pb2),
    ("promotion_host", promotion_pb2),
    ("audit_host", audit_pb2),
)
# Every RPC the services declare, read from the generated descriptors so new ones are covered.
RPCS = [
    pytest.param(host, f"/{service.full_name}/{method.name}", method.input_type, id=method.name)
    for host, module in HOST_OF_MODULE
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
WIRE_TYPE_THAT_DOES_NOT_EXIST = 7
MAX_DETAILS = 120


def _identity(data: bytes) -> bytes:
    return data


def _parses(descriptor: Descriptor, payload: bytes) -> bool:
    try:
        message_factory.GetMessageClass(descriptor).FromString(payload)
    except DecodeError:
        return False
    return True


def random_bytes(method: str, descriptor: Descriptor) -> bytes:
    """Seeded random bytes (the first seed whose bytes do not parse)."""
    attempt = 0
    while True:
        payload = random.Random(f"{method}:{attempt}").randbytes(48)
        if not _parses(descriptor, payload):
            return payload
        attempt += 1


_SAMPLE_VALUES: dict[int, object] = {
    FieldDescriptor.CPPTYPE_STRING: "a value long enough to be cut",
    FieldDescriptor.CPPTYPE_INT32: 300_000_000,
    FieldDescriptor.CPPTYPE_INT64: 300_000_000_000,
    FieldDescriptor.CPPTYPE_UINT32: 300_000_000,
    FieldDescriptor.CPPTYPE_UINT64: 300_000_000_000,
    FieldDescriptor.CPPTYPE_DOUBLE: 1.5,
    FieldDescriptor.CPPTYPE_FLOAT: 1.5,
    FieldDescriptor.CPPTYPE_BOOL: True,
}


def truncated_message(method: str, descriptor: Descriptor) -> bytes:
    """A valid message of the method's type with every singular scalar field set, minus its
    last byte."""
    message: Message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        value = _SAMPLE_VALUES.get(field.cpp_type)
        if value is not None and not field.is_repeated:
            if field.type == FieldDescriptor.TYPE_BYTES:
                value = str(value).encode()
            setattr(message, field.name, value)
    # A message without fields (PublicKeysRequest) is cut inside an unknown field instead.
    whole = message.SerializeToString() or bytes([(15 << 3) | 2, 5]) + b"abcde"
    return whole[:-1]


def wrong_wire_type(method: str, descriptor: Descriptor) -> bytes:
    """Field 1 tagged with a wire type protobuf does not have."""
    return bytes([(1 << 3) | WIRE_TYPE_THAT_DOES_NOT_EXIST, 1, 2, 3])


PAYLOADS: dict[str, Callable[[str, Descriptor], bytes]] = {
    "random": random_bytes,
    "truncated": truncated_message,
    "wire-type": wrong_wire_type,
}


def request_trouble(records: list[logging.LogRecord], method: str) -> list[logging.LogRecord]:
    """The records of warning level or above that concern the call (its method, or gRPC)."""
    return [
        r
        for r in records
        if r.levelno >= logging.WARNING and (method in r.getMessage() or r.name.startswith("grpc"))
    ]


async def rejected(
    call: grpc.aio.Call, caplog: pytest.LogCaptureFixture, method: str
) -> grpc.aio.AioRpcError:
    """The error call ends with, after checking what the service logged for it."""
    caplog.clear()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text
    trouble = request_trouble(caplog.records, method)
    assert len(trouble) <= 1, [r.getMessage() for r in trouble]
    assert all(r.levelno == logging.WARNING for r in trouble), [r.levelname for r in trouble]
    return err.value


def assert_invalid_argument(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert "not a valid" in details
    assert len(details) <= MAX_DETAILS, details
    for leak in ("DecodeError", "Traceback", "Error parsing", "Unexpected"):
        assert leak not in details


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize(("host_name", "method", "request_type"), RPCS)
async def test_unparsable_request_is_invalid_argument_once_authenticated(
    user_host: ServiceHost,
    promotion_host: ServiceHost,
    audit_host: ServiceHost,
    auth: tuple[tuple[str, str], ...],
    caplog: pytest.LogCaptureFixture,
    host_name: str,
    method: str,
    request_type: Descriptor,
    kind: str,
) -> None:
    host = {"user_host": user_host, "promotion_host": promotion_host, "audit_host": audit_host}[
        host_name
    ]
    payload = PAYLOADS[kind](method, request_type)
    assert not _parses(request_type, payload), "the payload must be one protobuf refuses"
    public = method in host.definition.public_methods
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        rpc = channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )

        anonymous = await rejected(rpc(payload), caplog, method)
        if public:
            assert_invalid_argument(anonymous)
        else:
            assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED, anonymous.details()

        assert_invalid_argument(await rejected(rpc(payload, metadata=auth), caplog, method))


def test_every_service_contributes_rpcs() -> None:
    assert {p.values[0] for p in RPCS} == {host for host, _ in HOST_OF_MODULE}


async def test_the_public_rpcs_are_among_them(user_host: ServiceHost) -> None:
    methods = {p.values[1] for p in RPCS}
    assert set(user_host.definition.public_methods) <= methods
    assert user_host.definition.public_methods, "Auth and ValidateToken are public"


async def test_unparsable_health_check_is_invalid_argument(
    user_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    method = "/grpc.health.v1.Health/Check"
    rpc = user_channel.unary_unary(
        method, request_serializer=_identity, response_deserializer=_identity
    )
    payload = wrong_wire_type(method, health_pb2.HealthCheckRequest.DESCRIPTOR)
    assert_invalid_argument(await rejected(rpc(payload), caplog, method))


async def test_unparsable_health_watch_is_invalid_argument(
    user_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    method = "/grpc.health.v1.Health/Watch"
    rpc = user_channel.unary_stream(
        method, request_serializer=_identity, response_deserializer=_identity
    )
    payload = random_bytes(method, health_pb2.HealthCheckRequest.DESCRIPTOR)
    call = rpc(payload)
    caplog.clear()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert not [r for r in caplog.records if r.exc_info]
    assert len(request_trouble(caplog.records, method)) <= 1
    assert_invalid_argument(err.value)


async def test_unparsable_reflection_request_is_invalid_argument(
    user_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    method = f"/{reflection.SERVICE_NAME}/ServerReflectionInfo"
    rpc = user_channel.stream_stream(
        method, request_serializer=_identity, response_deserializer=_identity
    )
    valid = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    call = rpc()
    caplog.clear()
    await call.write(valid)
    assert await call.read()  # the stream answers good requests until a bad one comes
    await call.write(truncated_message(method, reflection_pb2.ServerReflectionRequest.DESCRIPTOR))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert not [r for r in caplog.records if r.exc_info]
    assert len(request_trouble(caplog.records, method)) <= 1
    assert_invalid_argument(err.value)


async def test_the_message_is_in_the_service_language(
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    method = user_pb2.DESCRIPTOR.services_by_name["UserSrv"].methods_by_name["ValidateToken"]
    path = f"/{method.containing_service.full_name}/{method.name}"
    async with serving(build(user_settings_factory(app_language="fr"))) as channel:
        rpc = channel.unary_unary(
            path, request_serializer=_identity, response_deserializer=_identity
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(wrong_wire_type(path, method.input_type))
        watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=_identity,
            response_deserializer=_identity,
        )
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await watch(b"\xff" * 11).read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"request n'est pas un message {method.input_type.full_name} valide" in (
        err.value.details() or ""
    )
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request n'est pas un message grpc.health.v1.HealthCheckRequest valide" in (
        streamed.value.details() or ""
    )
