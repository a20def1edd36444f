"""The authorization rules (global_utils.identity.roles) as pure functions, and roles in tokens."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import grpc
import pytest

from audit.server.queries import authorization as audit_rules
from global_errors import Language, MessageKey, PermissionDenied, ResourceExhausted
from global_errors.status import status_code_for, to_grpc_status
from global_utils.identity.principal import Principal, Role
from promotion.server import authorization as promotion_rules
from user.server import authorization as user_rules
from user.server.authorization import AccountTerms
from user.server.models import User
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys
from user.server.tokens import TokenCodec

ADMIN = Principal(user_id="1", role=Role.ADMIN)
MEMBER = Principal(user_id="2", role=Role.MEMBER)
T0 = datetime(2000, 1, 1, tzinfo=UTC)
T1 = datetime(2200, 1, 1, tzinfo=UTC)
TERMS = AccountTerms(True, T0, T1, Role.MEMBER)


def test_a_principal_without_a_role_is_a_member() -> None:
    assert Principal(user_id="7").role is Role.MEMBER
    assert Role.parse("admin") is Role.ADMIN
    assert Role.parse(None) is Role.MEMBER and Role.parse("root") is Role.MEMBER


def test_only_an_admin_creates_and_deletes_users() -> None:
    user_rules.check_user_create(ADMIN)
    user_rules.check_user_delete(ADMIN)
    with pytest.raises(PermissionDenied):
        user_rules.check_user_create(MEMBER)
    with pytest.raises(PermissionDenied):
        user_rules.check_user_delete(MEMBER)


def test_a_member_updates_only_their_own_record() -> None:
    user_rules.check_user_update_target(MEMBER, 2)
    user_rules.check_user_update_target(ADMIN, 2)
    with pytest.raises(PermissionDenied):
        user_rules.check_user_update_target(MEMBER, 3)


@pytest.mark.parametrize(
    "wanted",
    [
        AccountTerms(False, T0, T1, None),
        AccountTerms(True, T1, T1, None),
        AccountTerms(True, T0, T0, None),
        AccountTerms(True, T0, T1, Role.ADMIN),
    ],
    ids=["active", "valid_from", "valid_thru", "role"],
)
def test_a_member_keeps_their_account_terms(wanted: AccountTerms) -> None:
    with pytest.raises(PermissionDenied):
        user_rules.check_user_update(MEMBER, TERMS, wanted)
    user_rules.check_user_update(ADMIN, TERMS, wanted)


def test_a_member_may_send_their_terms_unchanged() -> None:
    user_rules.check_user_update(MEMBER, TERMS, TERMS)
    user_rules.check_user_update(MEMBER, TERMS, AccountTerms(True, T0, T1, None))


def test_promotion_writes_are_admin_only() -> None:
    promotion_rules.check_promotion_write(ADMIN, "create")
    with pytest.raises(PermissionDenied):
        promotion_rules.check_promotion_write(MEMBER, "create")


def test_a_member_reads_only_history_by_or_about_them() -> None:
    def scope(who: Principal, by: str = "", name: str = "", oid: str = "") -> str:
        return audit_rules.audit_performed_by(who, performed_by=by, object_name=name, object_id=oid)

    assert scope(ADMIN) == "" and scope(ADMIN, by="2") == "2"
    assert scope(ADMIN, name="user", oid="9") == ""
    assert scope(MEMBER) == "2"  # narrowed to what they did
    assert scope(MEMBER, name="promotion") == "2"
    assert scope(MEMBER, by="2", name="user", oid="9") == "2"
    assert scope(MEMBER, name="user", oid="2") == ""  # everything about their record
    assert scope(MEMBER, name="session", oid="2") == ""  # their logins
    for refused in ({"by": "1"}, {"name": "user", "oid": "1"}, {"name": "promotion", "oid": "2"}):
        with pytest.raises(PermissionDenied):
            scope(MEMBER, **refused)


def test_a_refusal_is_logged_with_who_and_what(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="global_utils.identity.roles"):
        with pytest.raises(PermissionDenied):
            user_rules.check_user_delete(MEMBER)
    assert "permission denied: user 2 (role member) may not delete users" in caplog.text


def test_refusals_and_throttling_map_to_their_status_in_every_language() -> None:
    denied = PermissionDenied(MessageKey.PERMISSION_DENIED)
    throttled = ResourceExhausted(MessageKey.LOGIN_THROTTLED, seconds=42)
    assert status_code_for(denied) == grpc.StatusCode.PERMISSION_DENIED
    assert status_code_for(throttled) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert to_grpc_status(denied, Language.ES).details == "permiso denegado: su rol no lo permite"
    assert "42" in to_grpc_status(throttled, Language.FR).details


def test_the_token_carries_the_role() -> None:
    codec = TokenCodec(parse_signing_keys(new_signing_key_pem()))
    user = User(1, "Super", "Duck", "Super Duck", T0, T1, True, "d@x.com", "DC", T0, T0, Role.ADMIN)
    assert codec.decode(codec.issue(user).token).role is Role.ADMIN
