"""Revocations pushed to every verifier (issue 28): a user deactivated, deleted or demoted has
their earlier tokens refused by two promotion and two audit instances, which verify tokens
locally, within the bound of the feed and with no call to the user service; a verifier started
after the revocation refuses the token from its first call; the cache never answers for a
revoked user; only the user service may write revocations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

import nats
from audit.proto import audit_pb2, audit_pb2_grpc
from audit.server.bootstrap import build as build_audit
from audit.server.settings import AuditSettings
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.identity.revocations import (
    REVOCATIONS_STREAM,
    RevocationCheckingVerifier,
    RevocationFeed,
    decode_not_before,
    revocation_subject,
)
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from tests.helpers import eventually, new_user, sample, scrape, started
from user.proto import user_pb2, user_pb2_grpc

PASSWORD = "s3cret-pw"
# The guarantee is one second from the commit; on a loaded two-core test machine the wait for
# the refusal gets more room, and the time it took is printed.
REFUSED_WITHIN = 5.0


class Verifier:
    """One promotion or audit instance, as a client calls it."""

    def __init__(self, host: ServiceHost, name: str) -> None:
        self.host = host
        self.name = name
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")

    async def served(self, token: str) -> bool:
        """True if a read with token is served, False if refused as unauthenticated."""
        md = bearer_metadata(token)
        try:
            if self.name.startswith("promotion"):
                stub = promotion_pb2_grpc.PromotionSrvStub(self.channel)
                await stub.GetPromotions(promotion_pb2.SearchParams(page_size=1), metadata=md)
            else:
                audit = audit_pb2_grpc.AuditSrvStub(self.channel)
                await audit.GetAuditRecords(audit_pb2.SearchParams(page_size=1), metadata=md)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAUTHENTICATED, (self.name, exc)
            return False
        return True

    @property
    def checker(self) -> RevocationCheckingVerifier:
        return component(self.host, RevocationCheckingVerifier)

    @property
    def feed(self) -> RevocationFeed:
        return component(self.host, RevocationFeed)


def component(host: ServiceHost, kind: type[Any]) -> Any:
    """host's component (or its token verifier) of kind."""
    for interceptor in host.interceptors:
        for concern in getattr(interceptor, "concerns", ()):
            verifier = getattr(concern, "_verifier", None)
            if isinstance(verifier, kind):
                return verifier
    return next(c for c in host.components if isinstance(c, kind))


async def start_verifiers(
    promotion_settings: Callable[..., PromotionSettings],
    audit_settings: Callable[..., AuditSettings],
) -> list[Verifier]:
    verifiers = []
    for i in range(2):
        verifiers.append(
            Verifier(await started(build_promotion(promotion_settings())), f"promotion{i}")
        )
        verifiers.append(Verifier(await started(build_audit(audit_settings())), f"audit{i}"))
    return verifiers


@pytest.fixture(scope="module")
async def verifiers(
    user_host: ServiceHost,
    promotion_settings_factory: Callable[..., PromotionSettings],
    audit_settings_factory: Callable[..., AuditSettings],
) -> AsyncIterator[list[Verifier]]:
    """Two promotion and two audit instances on the session's servers, SERVING."""
    started_ones = await start_verifiers(promotion_settings_factory, audit_settings_factory)
    yield started_ones
    for verifier in started_ones:
        await verifier.channel.close()
        await verifier.host.stop()


async def sign_up(
    user_stub: user_pb2_grpc.UserSrvStub, auth: Any, role: int = user_pb2.ROLE_MEMBER
) -> tuple[user_pb2.User, str]:
    """A new active user of role, and a token of theirs."""
    user = (
        await user_stub.CreateUser(new_user(active=True, pwd=PASSWORD, role=role), metadata=auth)
    ).user
    token = (await user_stub.Auth(user_pb2.User(email=user.email, pwd=PASSWORD))).token
    return user, token


async def refused_everywhere(verifiers: list[Verifier], token: str) -> float:
    """Waits until every verifier refuses token; the seconds it took."""
    began = time.monotonic()
    waiting = list(verifiers)

    async def all_refuse() -> bool:
        for verifier in list(waiting):
            if not await verifier.served(token):
                waiting.remove(verifier)
        return not waiting

    await eventually(all_refuse, timeout=REFUSED_WITHIN, what="every verifier to refuse")
    return time.monotonic() - began


async def revoke(
    kind: str, user_stub: user_pb2_grpc.UserSrvStub, auth: Any, user: user_pb2.User
) -> None:
    if kind == "deactivated":
        user.active = False
        await user_stub.UpdateUser(user, metadata=auth)
    elif kind == "deleted":
        user.active = False
        await user_stub.UpdateUser(user, metadata=auth)
        await user_stub.DeleteUser(user_pb2.SearchId(id=user.id), metadata=auth)
    else:
        user.role = user_pb2.ROLE_MEMBER
        await user_stub.UpdateUser(user, metadata=auth)


@pytest.mark.parametrize("kind", ["deactivated", "deleted", "demoted"])
async def test_a_revoked_users_token_is_refused_by_every_verifier(
    kind: str, verifiers: list[Verifier], user_stub: user_pb2_grpc.UserSrvStub, auth: Any
) -> None:
    role = user_pb2.ROLE_ADMIN if kind == "demoted" else user_pb2.ROLE_MEMBER
    user, token = await sign_up(user_stub, auth, role)
    other, others_token = await sign_up(user_stub, auth)
    for verifier in verifiers:  # served, and now in every verifier's cache
        assert await verifier.served(token), verifier.name
    fallbacks = [v.checker.fallbacks for v in verifiers]
    await revoke(kind, user_stub, auth, user)
    took = await refused_everywhere(verifiers, token)
    print(f"\n{kind}: refused by all four verifiers {took * 1000:.0f} ms after the change")
    # the feed did it, not a call to the user service; others are untouched
    assert [v.checker.fallbacks for v in verifiers] == fallbacks
    for verifier in verifiers:
        assert await verifier.served(others_token), verifier.name
        assert not await verifier.served(token), verifier.name
    if kind == "demoted":  # a new token, with the new role, is served
        fresh = (await user_stub.Auth(user_pb2.User(email=user.email, pwd=PASSWORD))).token
        for verifier in verifiers:
            assert await verifier.served(fresh), verifier.name


async def test_a_verifier_started_after_the_revocation_refuses_from_its_first_call(
    user_host: ServiceHost,
    user_stub: user_pb2_grpc.UserSrvStub,
    auth: Any,
    promotion_settings_factory: Callable[..., PromotionSettings],
    audit_settings_factory: Callable[..., AuditSettings],
    nats_client: Client,
) -> None:
    user, token = await sign_up(user_stub, auth)
    await revoke("deactivated", user_stub, auth, user)
    js = nats_client.jetstream()

    async def published() -> bool:
        try:
            entry = await js.get_last_msg(REVOCATIONS_STREAM, revocation_subject(user.id))
        except NatsError:
            return False
        return decode_not_before(entry.data or b"") is not None

    await eventually(published, what="the revocation in the bucket")
    late = await start_verifiers(promotion_settings_factory, audit_settings_factory)
    try:
        for verifier in late:
            assert verifier.feed.fresh, verifier.name
            assert not await verifier.served(token), verifier.name  # its very first call
            assert verifier.checker.refused == 1 and verifier.checker.fallbacks == 0
    finally:
        for verifier in late:
            await verifier.channel.close()
            await verifier.host.stop()


async def test_only_the_user_service_writes_revocations(
    nats_server: EmbeddedNats, nats_keys: NatsKeys, verifiers: list[Verifier]
) -> None:
    url = f"nats://{nats_server.address}"
    for service in ("promotion", "audit"):
        errors: list[str] = []

        async def on_error(exc: Exception, seen: list[str] = errors) -> None:
            seen.append(str(exc).lower())

        client = await nats.connect(
            url,
            allow_reconnect=False,
            error_cb=on_error,
            **nats_keys.access(service).connect_options(),
        )
        try:
            js = client.jetstream(timeout=1)
            # reading is allowed: the stream's info, a consumer of its own on its own inbox
            info = await js.stream_info(REVOCATIONS_STREAM)
            assert info.config.name == REVOCATIONS_STREAM
            consumer = await js.add_consumer(
                REVOCATIONS_STREAM,
                ConsumerConfig(
                    deliver_subject=client.new_inbox(),
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.NONE,
                ),
            )
            assert await js.delete_consumer(REVOCATIONS_STREAM, consumer.name)
            # writing is not: neither a revocation nor removing one, nor the bucket itself
            with pytest.raises(NatsError):
                await js.publish(revocation_subject(1), b"1.0")
            await client.publish(f"$JS.API.STREAM.PURGE.{REVOCATIONS_STREAM}", b"")
            await client.publish(f"$JS.API.STREAM.DELETE.{REVOCATIONS_STREAM}", b"")

            async def refused_all(errors: list[str] = errors) -> bool:
                return all(
                    any("permissions violation" in e and what in e for e in errors)
                    for what in (
                        'publish to "$kv.revocations.1"',
                        f'publish to "$js.api.stream.purge.{REVOCATIONS_STREAM.lower()}"',
                        f'publish to "$js.api.stream.delete.{REVOCATIONS_STREAM.lower()}"',
                    )
                )

            await eventually(refused_all, timeout=5, what=f"{service}'s writes refused")
        finally:
            await client.close()


async def test_a_reused_refresh_token_ends_its_users_access_tokens_everywhere(
    verifiers: list[Verifier], user_stub: user_pb2_grpc.UserSrvStub, auth: Any
) -> None:
    user, _ = await sign_up(user_stub, auth)
    first = await user_stub.Auth(user_pb2.User(email=user.email, pwd=PASSWORD))
    second = await user_stub.RefreshToken(
        user_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    for verifier in verifiers:
        assert await verifier.served(second.token), verifier.name
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await user_stub.RefreshToken(
            user_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
        )
    assert reused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    for token in (first.token, second.token):
        await refused_everywhere(verifiers, token)

    async def user_service_refuses() -> bool:
        try:
            await user_stub.ValidateToken(user_pb2.Token(token=second.token))
        except grpc.aio.AioRpcError as exc:
            return exc.code() is grpc.StatusCode.UNAUTHENTICATED
        return False

    # the user service follows the feed too (its stored user shows nothing of the reuse)
    await eventually(user_service_refuses, timeout=REFUSED_WITHIN, what="ValidateToken to refuse")
    with pytest.raises(grpc.aio.AioRpcError) as read:  # its reads too
        await user_stub.GetUserById(
            user_pb2.SearchId(id=user.id), metadata=bearer_metadata(second.token)
        )
    assert read.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # a new login is served everywhere
    again = (await user_stub.Auth(user_pb2.User(email=user.email, pwd=PASSWORD))).token
    for verifier in verifiers:
        assert await verifier.served(again), verifier.name


async def test_the_user_service_refuses_a_demoted_admins_token_at_once(
    user_stub: user_pb2_grpc.UserSrvStub, auth: Any
) -> None:
    user, token = await sign_up(user_stub, auth, user_pb2.ROLE_ADMIN)
    assert (await user_stub.ValidateToken(user_pb2.Token(token=token))).role == user_pb2.ROLE_ADMIN
    await revoke("demoted", user_stub, auth, user)
    # its stored user decides, without waiting for any feed
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await user_stub.ValidateToken(user_pb2.Token(token=token))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as read:
        await user_stub.GetUserById(user_pb2.SearchId(id=user.id), metadata=bearer_metadata(token))
    assert read.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_the_feed_is_measured(
    verifiers: list[Verifier],
    user_host: ServiceHost,
    user_stub: user_pb2_grpc.UserSrvStub,
    auth: Any,
) -> None:
    user, token = await sign_up(user_stub, auth)
    await revoke("deactivated", user_stub, auth, user)
    await refused_everywhere(verifiers, token)
    for verifier in verifiers:
        got = await scrape(verifier.host)
        assert (sample(got, "gotemp_token_revocations_applied_total") or 0) >= 1, verifier.name
        assert (sample(got, "gotemp_token_revocations_users") or 0) >= 1, verifier.name
        age = sample(got, "gotemp_token_revocation_feed_age_seconds")
        assert age is not None and 0 <= age <= verifier.feed.max_age_seconds, verifier.name
        assert (sample(got, "gotemp_tokens_refused_revoked_total") or 0) >= 1, verifier.name
        assert sample(got, "gotemp_token_revocation_fallbacks_total") == verifier.checker.fallbacks
    # the user service follows the feed too
    got = await scrape(user_host)
    assert (sample(got, "gotemp_token_revocations_applied_total") or 0) >= 1
    assert sample(got, "gotemp_token_revocation_feed_age_seconds") is not None
