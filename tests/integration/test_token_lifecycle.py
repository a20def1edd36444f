"""Access and refresh tokens: login hands out both, a refresh rotates them, reuse revokes the
family, deactivation and password changes revoke; keys are published (gRPC and JWKS) and
promotion verifies locally, through a user-service outage and a key rollover."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import jwt
import pytest
from google.protobuf.message_factory import GetMessageClass

from global_utils.identity.principal import bearer_metadata
from global_utils.identity.token_keys import keys_from_jwks
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from tests.helpers import eventually, http_get, new_user, serving, started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import JWKS_PATH
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys

PASSWORD = "s3cret-pw"


async def refused(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def active_user(user_stub: user_pb2_grpc.UserSrvStub, auth) -> user_pb2.User:
    made = await user_stub.CreateUser(new_user(active=True, pwd=PASSWORD), metadata=auth)
    return made.user


async def login(stub: user_pb2_grpc.UserSrvStub, email: str) -> user_pb2.Token:
    return await stub.Auth(user_pb2.User(email=email, pwd=PASSWORD))


async def refresh(stub: user_pb2_grpc.UserSrvStub, token: str) -> user_pb2.Token:
    return await stub.RefreshToken(user_pb2.RefreshTokenRequest(refresh_token=token))


async def test_login_gives_a_15_minute_access_token_and_a_refresh_token(user_stub, auth) -> None:
    user = await active_user(user_stub, auth)
    token = await login(user_stub, user.email)
    assert token.refresh_token and token.refresh_token != token.token
    lifetime = token.expires_at.ToDatetime(UTC) - datetime.now(UTC)
    assert timedelta(minutes=14) < lifetime <= timedelta(minutes=15)
    assert jwt.get_unverified_header(token.token)["alg"] == "EdDSA"


async def test_refresh_rotates_and_reuse_revokes_the_family(user_stub, auth) -> None:
    user = await active_user(user_stub, auth)
    first = await login(user_stub, user.email)
    second = await refresh(user_stub, first.refresh_token)
    assert second.refresh_token not in ("", first.refresh_token)
    me = await user_stub.ValidateToken(user_pb2.Token(token=second.token))
    assert me.e_uid == str(user.id)
    third = await refresh(user_stub, second.refresh_token)
    # the first token again: copied, so every token of the login goes
    assert await refused(refresh(user_stub, first.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    assert await refused(refresh(user_stub, third.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    # another login is another family
    other = await login(user_stub, user.email)
    assert (await refresh(user_stub, other.refresh_token)).token


async def test_unknown_refresh_token_is_refused(user_stub) -> None:
    for token in ("", "not-a-refresh-token", "A" * 43):
        assert await refused(refresh(user_stub, token)) == grpc.StatusCode.UNAUTHENTICATED


async def test_deactivation_revokes_refresh_and_the_user_service_refuses_at_once(
    user_stub, promotion_stub, auth
) -> None:
    user = await active_user(user_stub, auth)
    session = await login(user_stub, user.email)
    mine = bearer_metadata(session.token)
    await promotion_stub.GetPromotions(promotion_pb2.SearchParams(name="Promo1"), metadata=mine)
    user.active = False
    await user_stub.UpdateUser(user, metadata=auth)
    assert (
        await refused(refresh(user_stub, session.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await refused(user_stub.ValidateToken(user_pb2.Token(token=session.token)))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await refused(user_stub.GetUserById(user_pb2.SearchId(id=user.id), metadata=mine))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    # promotion verifies locally, and hears of the deactivation through the revocation feed
    # (tests/integration/test_token_revocations.py: every verifier, every kind of revocation)

    async def promotion_refuses() -> bool:
        try:
            await promotion_stub.GetPromotions(
                promotion_pb2.SearchParams(name="Promo1"), metadata=mine
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await eventually(promotion_refuses, timeout=5, what="promotion to refuse the token")


async def test_password_change_and_deletion_revoke_refresh_tokens(user_stub, auth) -> None:
    user = await active_user(user_stub, auth)
    session = await login(user_stub, user.email)
    user.pwd = "another-pw"
    await user_stub.UpdateUser(user, metadata=auth)
    assert (
        await refused(refresh(user_stub, session.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED
    )
    # an unchanged password (empty) keeps the refresh tokens
    user.pwd = PASSWORD
    await user_stub.UpdateUser(user, metadata=auth)
    kept = await login(user_stub, user.email)
    user.pwd = ""
    await user_stub.UpdateUser(user, metadata=auth)
    kept = await refresh(user_stub, kept.refresh_token)
    user.active = False
    user.pwd = ""
    await user_stub.UpdateUser(user, metadata=auth)
    await user_stub.DeleteUser(user_pb2.SearchId(id=user.id), metadata=auth)
    assert await refused(refresh(user_stub, kept.refresh_token)) == grpc.StatusCode.UNAUTHENTICATED


async def test_public_keys_over_grpc_and_jwks_agree(user_stub, user_host, duck_token) -> None:
    reply = await user_stub.GetPublicKeys(user_pb2.PublicKeysRequest())
    assert [(k.alg, k.kty, k.crv) for k in reply.key] == [("EdDSA", "OKP", "Ed25519")]
    assert user_host.http is not None and user_host.http.endpoint is not None
    port = user_host.http.endpoint.port
    status, body = await http_get(port, JWKS_PATH)
    assert status == "HTTP/1.1 200 OK"
    keys = keys_from_jwks(body)
    assert list(keys) == [k.kid for k in reply.key]
    assert jwt.get_unverified_header(duck_token)["kid"] in keys
    assert json.loads(body)["keys"][0]["x"] == reply.key[0].x
    assert (await http_get(port, "/nothing"))[0] == "HTTP/1.1 404 Not Found"


async def test_promotion_keeps_verifying_while_the_user_service_is_down(
    user_settings_factory: Callable[..., UserSettings],
    promotion_settings_factory: Callable[..., PromotionSettings],
) -> None:
    # a port the system chooses; the user service comes back on it later
    user = await started(build_user(user_settings_factory(micro_server_address="127.0.0.1:0")))
    port = user.port
    try:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        token = (await login_seed(user_pb2_grpc.UserSrvStub(channel))).token
        await channel.close()
    finally:
        await user.stop()
    promotion = build_promotion(
        promotion_settings_factory(
            micro_registry="static",
            micro_registry_address=f"user=127.0.0.1:{port}",
            token_cache_seconds=0,
        )
    )
    async with serving(promotion) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        # no keys yet and nobody to ask: unavailable, not a verdict on the token
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetPromotions(promotion_pb2.SearchParams(), metadata=bearer_metadata(token))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        user = await started(
            build_user(user_settings_factory(micro_server_address=f"127.0.0.1:{port}"))
        )
        try:
            await stub.GetPromotions(promotion_pb2.SearchParams(), metadata=bearer_metadata(token))
        finally:
            await user.stop()
        # keys held: the user service's outage no longer matters (cache off: really verified)
        reply = await stub.GetPromotions(
            promotion_pb2.SearchParams(name="Promo1"), metadata=bearer_metadata(token)
        )
        assert [p.name for p in reply.promotion] == ["Promo1"]


async def test_key_rollover_two_keys_valid_and_promotion_refetches_on_the_new_kid(
    user_settings_factory: Callable[..., UserSettings],
    promotion_settings_factory: Callable[..., PromotionSettings],
    jwt_key: str,
) -> None:
    # before: the old key alone, on a port the system chooses (the next instances reuse it)
    old = await started(build_user(user_settings_factory(micro_server_address="127.0.0.1:0")))
    address = f"127.0.0.1:{old.port}"
    new_key = new_signing_key_pem("the next key")
    promotion = build_promotion(
        promotion_settings_factory(
            micro_registry="static", micro_registry_address=f"user={address}", token_cache_seconds=0
        )
    )
    async with serving(promotion) as channel:
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)

        async def accepted(token: str) -> None:
            await stub.GetPromotions(promotion_pb2.SearchParams(), metadata=bearer_metadata(token))

        try:
            old_token = (await login_at(address)).token
            await accepted(old_token)
        finally:
            await old.stop()
        # during: the new key signs, the old one still verifies
        rolled = await started(
            build_user(
                user_settings_factory(
                    micro_server_address=address, jwt_private_key=new_key + jwt_key
                )
            )
        )
        try:
            new_token = (await login_at(address)).token
            assert jwt.get_unverified_header(new_token)["kid"] == parse_signing_keys(new_key)[0].kid
            await accepted(new_token)  # an unknown kid: promotion fetched the keys again
            await accepted(old_token)
            async with grpc.aio.insecure_channel(address) as user_channel:
                users = user_pb2_grpc.UserSrvStub(user_channel)
                assert (await users.ValidateToken(user_pb2.Token(token=old_token))).valid
        finally:
            await rolled.stop()
        # after: the old key removed; its tokens are refused by the user service
        after = await started(
            build_user(user_settings_factory(micro_server_address=address, jwt_private_key=new_key))
        )
        try:
            async with grpc.aio.insecure_channel(address) as user_channel:
                users = user_pb2_grpc.UserSrvStub(user_channel)
                assert (await users.ValidateToken(user_pb2.Token(token=new_token))).valid
                code = await refused(users.ValidateToken(user_pb2.Token(token=old_token)))
                assert code == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await after.stop()


async def login_seed(stub: user_pb2_grpc.UserSrvStub) -> user_pb2.Token:
    return await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))


async def login_at(address: str) -> user_pb2.Token:
    async with grpc.aio.insecure_channel(address) as channel:
        return await login_seed(user_pb2_grpc.UserSrvStub(channel))


async def test_every_method_refuses_a_deactivated_or_deleted_users_token(
    user_stub, user_channel: grpc.aio.Channel, auth
) -> None:
    """Reads check their caller in their own query, everything else before the call: either
    way, no method that needs a token takes one whose user may no longer log in, whatever the
    request (here each method's empty request message)."""
    service = user_pb2.DESCRIPTOR.services_by_name["UserSrv"]
    public = {"Auth", "ValidateToken", "RefreshToken", "GetPublicKeys"}
    user = await active_user(user_stub, auth)
    session = await login(user_stub, user.email)
    mine = bearer_metadata(session.token)
    assert (await user_stub.GetUserById(user_pb2.SearchId(id=user.id), metadata=mine)).id

    async def refusals() -> dict[str, grpc.StatusCode]:
        codes = {}
        for method in service.methods:
            if method.name in public:
                continue
            request = GetMessageClass(method.input_type)()
            call = user_channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=lambda b: b,
            )
            codes[method.name] = await refused(call(request, metadata=mine))
        return codes

    user.active = False
    await user_stub.UpdateUser(user, metadata=auth)
    deactivated = await refusals()
    assert set(deactivated.values()) == {grpc.StatusCode.UNAUTHENTICATED}, deactivated
    assert len(deactivated) == len(service.methods) - len(public)
    await user_stub.DeleteUser(user_pb2.SearchId(id=user.id), metadata=auth)
    deleted = await refusals()
    assert set(deleted.values()) == {grpc.StatusCode.UNAUTHENTICATED}, deleted
