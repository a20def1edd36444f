"""Promotion calls are authenticated by the user service, found over mDNS, with failover."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from nats.aio.msg import Msg

from devtools.stack import free_port
from global_utils.events.audit_event import AuditHeader
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from tests.helpers import audit_events_of, new_promotion, serving
from user.proto import user_pb2
from user.server.models import User
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys
from user.server.tokens import TokenCodec

PROTECTED = {
    "GetPromotionById": promotion_pb2.SearchId(id=1),
    "GetPromotions": promotion_pb2.SearchParams(),
    "CreatePromotion": promotion_pb2.Promotion(),
    "UpdatePromotion": promotion_pb2.Promotion(),
    "DeletePromotion": promotion_pb2.SearchId(id=1),
    "BeforeCreatePromotion": promotion_pb2.Promotion(),
    "BeforeUpdatePromotion": promotion_pb2.Promotion(),
    "BeforeDeletePromotion": promotion_pb2.Promotion(),
}
T = datetime(2020, 1, 1, tzinfo=UTC)
SOMEONE = User(1, "A", "B", "A B", T, T, True, "a@b.c", "", T, T)


def test_every_rpc_is_protected() -> None:
    methods = set(promotion_pb2.DESCRIPTOR.services_by_name["PromotionSrv"].methods_by_name)
    assert methods == set(PROTECTED)


@pytest.mark.parametrize("method", sorted(PROTECTED))
async def test_rpc_without_token_is_unauthenticated(promotion_stub, method: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(promotion_stub, method)(PROTECTED[method])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_from_user_service_is_accepted_in_both_styles(
    promotion_stub, duck_token
) -> None:
    for metadata in (bearer_metadata(duck_token), (("token", duck_token),)):
        reply = await promotion_stub.GetPromotions(
            promotion_pb2.SearchParams(name="Promo1"), metadata=metadata
        )
        assert [p.name for p in reply.promotion] == ["Promo1"]


async def test_tampered_expired_and_foreign_tokens_are_refused(
    promotion_stub, duck_token, jwt_key
) -> None:
    expired = TokenCodec(parse_signing_keys(jwt_key), lifetime=timedelta(seconds=-5)).issue(SOMEONE)
    foreign = TokenCodec(parse_signing_keys(new_signing_key_pem())).issue(SOMEONE)
    tampered = duck_token[:-4] + ("AAAA" if not duck_token.endswith("AAAA") else "BBBB")
    for token in (expired.token, foreign.token, tampered, "garbage"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await promotion_stub.GetPromotions(
                promotion_pb2.SearchParams(), metadata=bearer_metadata(token)
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token


async def test_audit_events_carry_the_callers_id(
    promotion_stub, user_stub, duck_token, auth, nats_client
) -> None:
    import asyncio

    seen: asyncio.Queue = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        # (changes close together may travel in one envelope)
        for headers, data in audit_events_of(msg):
            if headers.get(AuditHeader.OBJECT_NAME) == "promotion":
                await seen.put((headers, data))

    sub = await nats_client.subscribe("Audit", cb=collect)
    await nats_client.flush()
    me = await user_stub.ValidateToken(user_pb2.Token(token=duck_token))
    made = (await promotion_stub.CreatePromotion(new_promotion(), metadata=auth)).promotion
    change = promotion_pb2.Promotion()
    change.CopyFrom(made)
    change.description = "changed"
    await promotion_stub.UpdatePromotion(change, metadata=auth)
    await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=auth)
    got = []
    while len(got) < 3:
        headers, data = await asyncio.wait_for(seen.get(), timeout=10)
        if headers.get(AuditHeader.OBJECT_ID) == str(made.id):
            got.append((headers, data))
    await sub.unsubscribe()
    assert [h[AuditHeader.ACTION_TYPE] for h, _ in got] == ["insert", "update", "delete"]
    assert [h[AuditHeader.ACTION_FUNC] for h, _ in got] == [
        "AfterCreatePromotion",
        "AfterUpdatePromotion",
        "AfterDeletePromotion",
    ]
    for headers, data in got:
        assert headers[AuditHeader.SERVICE] == "promotion"
        assert headers[AuditHeader.PERFORMED_BY] == me.e_uid
        assert headers[AuditHeader.PAYLOAD_TYPE] == "promotion.Promotion"
        payload = promotion_pb2.Promotion.FromString(data)
        assert payload.id == made.id and len(payload.product) == 2


async def test_static_registry_reaches_the_user_service(
    user_host, promotion_settings_factory: Callable[..., PromotionSettings], duck_token
) -> None:
    # MICRO_REGISTRY=static, for networks without multicast: no mDNS anywhere on this path.
    host = build_promotion(
        promotion_settings_factory(
            micro_registry="static", micro_registry_address=f"user=127.0.0.1:{user_host.port}"
        )
    )
    async with serving(host) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        reply = await stub.GetPromotions(
            promotion_pb2.SearchParams(name="Promo1"), metadata=bearer_metadata(duck_token)
        )
        assert [p.name for p in reply.promotion] == ["Promo1"]


async def test_without_user_service_calls_are_unavailable(
    promotion_settings_factory: Callable[..., PromotionSettings], duck_token
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    host = build_promotion(
        promotion_settings_factory(micro_registry="static", micro_registry_address=f"user={dead}")
    )
    async with serving(host) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetPromotions(
                promotion_pb2.SearchParams(), metadata=bearer_metadata(duck_token)
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == "user service unavailable, try again later"


async def test_without_any_registered_user_instance_calls_are_unavailable(
    promotion_settings_factory: Callable[..., PromotionSettings], duck_token
) -> None:
    # A registry type of its own: no user instance is registered there.
    host = build_promotion(
        promotion_settings_factory(
            mdns_service_type="_gotemp-none._tcp.local.", auth_timeout_seconds=0.5
        )
    )
    async with serving(host) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetPromotions(
                promotion_pb2.SearchParams(), metadata=bearer_metadata(duck_token)
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_and_reflection_need_no_token(promotion_host) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{promotion_host.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="promotion.PromotionSrv")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.done_writing()
        assert "promotion.PromotionSrv" in {s.name for s in reply.list_services_response.service}
