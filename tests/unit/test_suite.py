"""The suite description's model (devtools/suite.py): what it accepts, what it refuses and
why, and the names it derives for the templates."""

from __future__ import annotations

import pytest

from devtools.suite import SuiteError, load_suite, parse_suite

USER = """
[[service]]
name = "user"
grpc_service = "user.UserSrv"
port = 50053
database = "appuser"
audit_events = "produces"
issues_tokens = true
"""
AUDIT = """
[[service]]
name = "audit"
grpc_service = "audit.AuditSrv"
port = 50055
database = "audit"
database_server = "timescaledb"
database_settings = "DB"
audit_events = "consumes"
calls = ["user"]
"""


def service(name: str, port: int, extra: str = "") -> str:
    return (
        f'\n[[service]]\nname = "{name}"\ngrpc_service = "{name}.{name.title()}Srv"\n'
        f"port = {port}\n{extra}\n"
    )


def refused(text: str) -> str:
    with pytest.raises(SuiteError) as error:
        parse_suite(text)
    return str(error.value)


def test_the_repository_suite_is_valid_and_in_file_order() -> None:
    suite = load_suite()
    assert suite.names[:3] == ["user", "promotion", "audit"]
    assert suite.token_issuer.name == "user"
    consumer = suite.consumer
    assert consumer is not None and consumer.name == "audit"


def test_a_minimal_suite_takes_the_defaults() -> None:
    suite = parse_suite(USER + AUDIT + service("widget", 50061))
    widget = suite.service("widget")
    assert widget.database == "" and not widget.has_database
    assert widget.audit_events == "none" and widget.calls == ()
    assert widget.writers == ("admin",) and widget.cli
    assert [s.name for s in suite.producers] == ["user"]
    assert [s.name for s in suite.with_database] == ["user", "audit"]


def test_derived_names() -> None:
    suite = parse_suite(USER + AUDIT)
    user, audit = suite.service("user"), suite.service("audit")
    assert (user.server, user.client) == ("usersrv", "usercli")
    assert (user.owner_role, user.runtime_role) == ("appuser_owner", "appuser_runtime")
    assert user.password_env("owner") == "APPUSER_OWNER_PASSWORD_FILE"
    assert user.password_secret("runtime") == "db_password_appuser_runtime"
    assert user.password_dev_file("runtime") == (
        "secrets/dev/db-password-appuser-runtime.DEVELOPMENT-ONLY"
    )
    assert user.nats_seed_secret == "nats_seed_user"
    assert user.nats_seed_dev_file == "secrets/dev/nats-seed-user.DEVELOPMENT-ONLY"
    assert user.nats_public_key_env == "NATS_USER_PUBLIC_NKEY"
    assert user.inbox_prefix == "_INBOX.user"
    assert user.signing_key_secret == "audit_signing_key_user"
    assert user.signing_key_id == "user-dev-1"
    assert (user.connect_setting, user.database_host) == ("POSTGRES_CONNECT", "pgdb")
    assert (audit.connect_setting, audit.password_file_setting) == (
        "DB_CONNECT",
        "DB_PASSWORD_FILE",
    )
    assert audit.database_host == "timescaledb"


@pytest.mark.parametrize(
    "name", ["Widget", "wid_get", "wid-get", "9widget", "class", "provision", "global_x", ""]
)
def test_a_name_that_is_no_plain_lowercase_identifier_or_is_taken_is_refused(name: str) -> None:
    message = refused(USER + AUDIT + service("widget", 50061).replace('"widget"', f'"{name}"', 1))
    assert "service name" in message


def test_duplicate_names_ports_and_databases_are_refused() -> None:
    assert "service name 'user' appears twice" in refused(USER + AUDIT + USER)
    assert "port 50053 appears twice" in refused(USER + AUDIT + service("widget", 50053))
    assert "database 'audit' appears twice" in refused(
        USER + AUDIT + service("widget", 50061, 'database = "audit"')
    )


def test_calls_must_name_other_existing_services() -> None:
    assert "calls unknown services ['shop']" in refused(
        USER + AUDIT + service("widget", 50061, 'calls = ["shop"]')
    )
    assert "calls itself" in refused(USER + AUDIT + service("widget", 50061, 'calls = ["widget"]'))


def test_audit_roles_are_consistent() -> None:
    second_consumer = service("ledger", 50061, 'database = "ledger"\naudit_events = "consumes"')
    assert "only one service may consume" in refused(USER + AUDIT + second_consumer)
    assert "no service consumes them" in refused(USER)
    assert "no database for its outbox" in refused(
        USER + AUDIT + service("widget", 50061, 'audit_events = "produces"')
    )
    assert "audit_events" in refused(
        USER + AUDIT + service("widget", 50061, 'audit_events = "maybe"')
    )


def test_exactly_one_token_issuer() -> None:
    assert "exactly one service issues tokens, not none" in refused(
        USER.replace("issues_tokens = true", "") + AUDIT
    )
    assert "exactly one service issues tokens" in refused(
        USER + AUDIT + service("widget", 50061, "issues_tokens = true")
    )


def test_unknown_keys_bad_values_and_bad_toml_are_refused_with_the_file_name() -> None:
    assert "colour" in refused(USER + AUDIT + service("widget", 50061, 'colour = "red"'))
    assert "port" in refused(USER + AUDIT + service("widget", 80))
    assert "database_server" in refused(
        USER + AUDIT + service("widget", 50061, 'database_server = "mysql"')
    )
    assert "grpc_service" in refused(
        USER + AUDIT + service("widget", 50061).replace('"widget.WidgetSrv"', '"WidgetSrv"')
    )
    assert refused("[[service]\n").startswith("suite.toml: ")
    assert "service" in refused("")


def test_kubernetes_names_and_resources() -> None:
    suite = parse_suite(
        USER
        + AUDIT
        + service(
            "shop",
            50061,
            'database = "shop_data"\ncalls = ["user"]\n'
            '[service.kubernetes]\nlimits = {cpu = "2500m", memory = "1Gi"}',
        )
    )
    shop, audit = suite.service("shop"), suite.service("audit")
    assert shop.image == "gotemp/shopsrv:latest" and shop.headless == "shop-headless"
    assert shop.connect_key == "shop-postgres-connect" and audit.connect_key == "audit-db-connect"
    assert shop.password_key("runtime") == "shop-data-runtime"
    assert shop.nats_seed_key == "shop-nkey-seed" and shop.signing_key_key == "shop-signing-key"
    assert shop.kubernetes.limits.whole_cpus == 2
    assert shop.kubernetes.requests.cpu == "100m"  # the default
    assert shop.kubernetes.dev_limits.whole_cpus == 1  # 500m: still one process
    assert [s.name for s in suite.callers("user")] == ["audit", "shop"]
    assert [s.name for s in suite.called] == ["user"]
    assert [s.name for s in suite.on_server("timescaledb")] == ["audit"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ('{cpu = "1.5", memory = "1Gi"}', "millicores"),
        ('{cpu = "1", memory = "1GB"}', "Ki, Mi or Gi"),
        ('{cpu = "1"}', "memory"),
    ],
)
def test_bad_kubernetes_quantities_are_refused(resources: str, message: str) -> None:
    text = USER + AUDIT + service("shop", 50061, f"[service.kubernetes]\nlimits = {resources}")
    assert message in refused(text)
