"""Roles through real channels: what an admin (Super Duck) and a member (Mighty Ant) may do in
the user, promotion and audit services."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg
import grpc
import pytest

from audit.proto import audit_pb2
from devtools.stack import EmbeddedPostgres
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2
from tests.helpers import eventually, new_promotion, new_user, serving
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings

Metadata = tuple[tuple[str, str], ...]
DENIED = "permission denied: your role does not allow this"


@pytest.fixture(scope="session")
async def ant_token(user_stub) -> str:
    """A token for the seed member Mighty Ant."""
    return (await user_stub.Auth(user_pb2.User(email="ant@mymail.com", pwd="1234"))).token


@pytest.fixture(scope="session")
def ant(ant_token: str) -> Metadata:
    """Call metadata carrying Mighty Ant's token."""
    return bearer_metadata(ant_token)


@pytest.fixture(scope="session")
async def ant_id(user_stub, ant_token: str) -> str:
    """Mighty Ant's user id."""
    return (await user_stub.ValidateToken(user_pb2.Token(token=ant_token))).e_uid


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.value.details() == DENIED
    return err.value


async def member(user_stub, auth: Metadata) -> tuple[user_pb2.User, Metadata]:
    """A fresh active member (made by the admin) and call metadata with their token."""
    made = (await user_stub.CreateUser(new_user(active=True, pwd="member-pw"), metadata=auth)).user
    token = (await user_stub.Auth(user_pb2.User(email=made.email, pwd="member-pw"))).token
    return made, bearer_metadata(token)


async def test_the_seed_roles_are_in_tokens_and_records(user_stub, duck_token, ant_token) -> None:
    duck = await user_stub.ValidateToken(user_pb2.Token(token=duck_token))
    ant = await user_stub.ValidateToken(user_pb2.Token(token=ant_token))
    assert (duck.role, ant.role) == (user_pb2.ROLE_ADMIN, user_pb2.ROLE_MEMBER)
    users = await user_stub.GetUsers(user_pb2.SearchParams(), metadata=bearer_metadata(ant_token))
    roles = {u.email: u.role for u in users.user}
    assert roles["duck@mymail.com"] == user_pb2.ROLE_ADMIN
    assert roles["ant@mymail.com"] == roles["cow@mymail.com"] == user_pb2.ROLE_MEMBER


# user service


async def test_a_member_reads_users(user_stub, ant, ant_id) -> None:
    me = await user_stub.GetUserById(user_pb2.SearchId(id=int(ant_id)), metadata=ant)
    assert me.email == "ant@mymail.com"
    found = await user_stub.GetUsersByEmail(
        user_pb2.SearchString(value="cow@mymail.com"), metadata=ant
    )
    assert [u.name for u in found.user] == ["Awesome Cow"]


async def test_a_member_neither_creates_nor_deletes_users(user_stub, auth, ant) -> None:
    await refused(user_stub.CreateUser(new_user(), metadata=ant))
    await refused(user_stub.BeforeCreateUser(new_user(), metadata=ant))
    target = (await user_stub.CreateUser(new_user(), metadata=auth)).user  # inactive
    await refused(user_stub.DeleteUser(user_pb2.SearchId(id=target.id), metadata=ant))
    await refused(user_stub.BeforeDeleteUser(user_pb2.User(id=target.id), metadata=ant))
    assert (await user_stub.GetUserById(user_pb2.SearchId(id=target.id), metadata=auth)).id
    await user_stub.DeleteUser(user_pb2.SearchId(id=target.id), metadata=auth)  # the admin may


async def test_a_member_does_not_update_another_user_or_their_password(
    user_stub, auth, ant
) -> None:
    target = (await user_stub.CreateUser(new_user(active=True, pwd="theirs-1"), metadata=auth)).user
    change = user_pb2.User()
    change.CopyFrom(target)
    change.lastname = "Hijacked"
    change.pwd = "mine-now"
    await refused(user_stub.UpdateUser(change, metadata=ant))
    await refused(user_stub.BeforeUpdateUser(change, metadata=ant))
    unchanged = await user_stub.GetUserById(user_pb2.SearchId(id=target.id), metadata=auth)
    assert unchanged.lastname == "User"
    await user_stub.Auth(user_pb2.User(email=target.email, pwd="theirs-1"))


async def test_a_member_updates_their_own_record_sent_whole(user_stub, auth) -> None:
    me, my_auth = await member(user_stub, auth)
    change = user_pb2.User()
    change.CopyFrom(me)  # active, validity dates and role as stored: the CLIs send all of it
    change.lastname = "Renamed"
    change.pwd = "new-member-pw"
    assert await user_stub.BeforeUpdateUser(change, metadata=my_auth) == user_pb2.ValidationErr()
    reply = await user_stub.UpdateUser(change, metadata=my_auth)
    assert reply.user.lastname == "Renamed" and reply.user.role == user_pb2.ROLE_MEMBER
    change.ClearField("role")  # unspecified: keeps the stored role
    await user_stub.UpdateUser(change, metadata=my_auth)
    await user_stub.Auth(user_pb2.User(email=me.email, pwd="new-member-pw"))


@pytest.mark.parametrize(
    "alter",
    [
        lambda u: setattr(u, "active", False),
        lambda u: u.valid_from.FromSeconds(u.valid_from.seconds - 86400),
        lambda u: u.valid_thru.FromSeconds(u.valid_thru.seconds + 86400),
        lambda u: setattr(u, "role", user_pb2.ROLE_ADMIN),
    ],
    ids=["active", "valid_from", "valid_thru", "role"],
)
async def test_a_member_cannot_change_their_own_account_terms(
    user_stub, auth, alter: Callable[[user_pb2.User], None]
) -> None:
    me, my_auth = await member(user_stub, auth)
    change = user_pb2.User()
    change.CopyFrom(me)
    alter(change)
    await refused(user_stub.UpdateUser(change, metadata=my_auth))
    await refused(user_stub.BeforeUpdateUser(change, metadata=my_auth))
    stored = await user_stub.GetUserById(user_pb2.SearchId(id=me.id), metadata=auth)
    assert stored == me


async def test_an_admin_sets_and_changes_roles(user_stub, auth) -> None:
    made = (
        await user_stub.CreateUser(
            new_user(active=True, pwd="admin-2", role=user_pb2.ROLE_ADMIN), metadata=auth
        )
    ).user
    assert made.role == user_pb2.ROLE_ADMIN
    token = (await user_stub.Auth(user_pb2.User(email=made.email, pwd="admin-2"))).token
    assert (await user_stub.ValidateToken(user_pb2.Token(token=token))).role == user_pb2.ROLE_ADMIN
    change = user_pb2.User()
    change.CopyFrom(made)
    change.role = user_pb2.ROLE_MEMBER
    change.active = False
    reply = await user_stub.UpdateUser(change, metadata=auth)
    assert reply.user.role == user_pb2.ROLE_MEMBER and not reply.user.active
    plain = (await user_stub.CreateUser(new_user(), metadata=auth)).user
    assert plain.role == user_pb2.ROLE_MEMBER  # the default


async def test_a_role_outside_the_enum_is_invalid(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.CreateUser(new_user(role=7), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role has a value that is not allowed" in err.value.details()


async def test_a_refusal_is_logged_and_not_audited(
    user_stub, ant, ant_id, postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(postgres.dsn("appuser"))
    try:
        before = await conn.fetchval("SELECT count(*) FROM audit_outbox")
        with caplog.at_level(logging.WARNING):
            await refused(user_stub.CreateUser(new_user(), metadata=ant))
        assert await conn.fetchval("SELECT count(*) FROM audit_outbox") == before
    finally:
        await conn.close()
    assert f"permission denied: user {ant_id} (role member) may not create users" in caplog.text


async def test_a_refusal_speaks_the_service_language(
    user_settings_factory: Callable[..., UserSettings], ant: Metadata
) -> None:
    async with serving(build(user_settings_factory(app_language="es"))) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await user_pb2_grpc.UserSrvStub(channel).CreateUser(new_user(), metadata=ant)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.value.details() == "permiso denegado: su rol no lo permite"


# promotion service: members read, admins write


async def test_a_member_reads_promotions(promotion_stub, ant) -> None:
    found = await promotion_stub.GetPromotions(
        promotion_pb2.SearchParams(name="Promo1"), metadata=ant
    )
    assert [p.name for p in found.promotion] == ["Promo1"]
    one = await promotion_stub.GetPromotionById(
        promotion_pb2.SearchId(id=found.promotion[0].id), metadata=ant
    )
    assert one.name == "Promo1"


async def test_promotion_writes_are_admin_only(promotion_stub, auth, ant) -> None:
    await refused(promotion_stub.CreatePromotion(new_promotion(), metadata=ant))
    await refused(promotion_stub.BeforeCreatePromotion(new_promotion(), metadata=ant))
    made = (await promotion_stub.CreatePromotion(new_promotion(), metadata=auth)).promotion
    change = promotion_pb2.Promotion()
    change.CopyFrom(made)
    change.description = "by a member"
    await refused(promotion_stub.UpdatePromotion(change, metadata=ant))
    await refused(promotion_stub.BeforeUpdatePromotion(change, metadata=ant))
    await refused(promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=ant))
    await refused(
        promotion_stub.BeforeDeletePromotion(promotion_pb2.Promotion(id=made.id), metadata=ant)
    )
    stored = await promotion_stub.GetPromotionById(promotion_pb2.SearchId(id=made.id), metadata=ant)
    assert stored.description == made.description
    await promotion_stub.DeletePromotion(promotion_pb2.SearchId(id=made.id), metadata=auth)


# audit service: admins read every history, members what they did or what concerns them


async def test_an_admin_reads_anyones_history(audit_stub, user_stub, auth, ant_id) -> None:
    made = (await user_stub.CreateUser(new_user(), metadata=auth)).user

    async def stored() -> bool:
        reply = await audit_stub.GetAuditRecords(
            audit_pb2.SearchParams(object_name="user", object_id=str(made.id)), metadata=auth
        )
        return len(reply.record) == 1

    await eventually(stored, timeout=20, what="the insert in the audit history")
    await audit_stub.GetAuditRecords(audit_pb2.SearchParams(performed_by=ant_id), metadata=auth)


async def test_a_member_reads_only_history_by_or_about_them(
    audit_stub, user_stub, auth, ant, ant_id
) -> None:
    async def my_logins() -> bool:
        reply = await audit_stub.GetAuditRecords(
            audit_pb2.SearchParams(object_name="session", object_id=ant_id), metadata=ant
        )
        return any(r.action_type == "login" for r in reply.record)

    await eventually(my_logins, timeout=20, what="Mighty Ant's login in the audit history")
    everything = await audit_stub.GetAuditRecords(audit_pb2.SearchParams(), metadata=ant)
    assert everything.record and {r.performed_by for r in everything.record} == {ant_id}
    about_me = await audit_stub.GetAuditRecords(
        audit_pb2.SearchParams(object_name="user", object_id=ant_id), metadata=ant
    )
    assert all(r.object_id == ant_id for r in about_me.record)
    duck_id = (
        (
            await user_stub.GetUsersByEmail(
                user_pb2.SearchString(value="duck@mymail.com"), metadata=auth
            )
        )
        .user[0]
        .id
    )
    for params in (
        audit_pb2.SearchParams(performed_by=str(duck_id)),
        audit_pb2.SearchParams(object_name="user", object_id=str(duck_id)),
        audit_pb2.SearchParams(object_name="session", object_id=str(duck_id)),
    ):
        await refused(audit_stub.GetAuditRecords(params, metadata=ant))
