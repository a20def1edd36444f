"""The CLIs' sessions: every call carries the current access token, and a call refused as
unauthenticated (the 15-minute token expired) is sent again after one refresh."""

from __future__ import annotations

import grpc
import pytest

from global_utils.discovery.registry import Endpoint
from global_utils.grpc.client import ClientSettings
from global_utils.grpc.host import ServiceHost
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from tests.integration.conftest import SEED_EMAIL, SEED_PASSWORD
from user.client.auth import Session, login_session, session_channel
from user.proto import user_pb2, user_pb2_grpc

STALE = "a-token-the-service-no-longer-takes"


def endpoint(host: ServiceHost) -> Endpoint:
    return Endpoint("127.0.0.1", host.port)


async def test_a_refused_token_is_refreshed_once_and_the_call_sent_again(
    user_host: ServiceHost,
) -> None:
    settings = ClientSettings(cli_password=SEED_PASSWORD)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user_host.port}") as plain:
        pair = await user_pb2_grpc.UserSrvStub(plain).Auth(
            user_pb2.User(email=SEED_EMAIL, pwd=SEED_PASSWORD)
        )

        async def renew(refresh_token: str) -> user_pb2.Token:
            request = user_pb2.RefreshTokenRequest(refresh_token=refresh_token)
            return await user_pb2_grpc.UserSrvStub(plain).RefreshToken(request)

        session = Session(STALE, pair.refresh_token, renew)
        async with session_channel(endpoint(user_host), "user", settings, session) as channel:
            found = await user_pb2_grpc.UserSrvStub(channel).GetUsers(
                user_pb2.SearchParams(email=SEED_EMAIL)
            )
        assert [u.email for u in found.user] == [SEED_EMAIL]
        # a new pair: the refresh token turned over
        assert session.access_token != STALE
        assert session.refresh_token and session.refresh_token != pair.refresh_token


async def test_without_a_refresh_token_the_refusal_reaches_the_caller(
    user_host: ServiceHost,
) -> None:
    session = Session(STALE)
    settings = ClientSettings()
    async with session_channel(endpoint(user_host), "user", settings, session) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await user_pb2_grpc.UserSrvStub(channel).GetUsers(user_pb2.SearchParams())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_promotion_cli_session_renews_through_the_user_service(
    user_host: ServiceHost, promotion_host: ServiceHost
) -> None:
    settings = ClientSettings(
        user_serveraddress=f"127.0.0.1:{user_host.port}", cli_password=SEED_PASSWORD
    )
    session = await login_session(settings, SEED_EMAIL, None)
    first_refresh = session.refresh_token
    session.access_token = STALE  # as if it had expired
    async with session_channel(endpoint(promotion_host), "promotion", settings, session) as ch:
        reply = await promotion_pb2_grpc.PromotionSrvStub(ch).GetPromotions(
            promotion_pb2.SearchParams(name="Promo1")
        )
    assert [p.name for p in reply.promotion] == ["Promo1"]
    assert session.refresh_token != first_refresh
