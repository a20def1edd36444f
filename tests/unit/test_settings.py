"""Configuration is validated once; a bad value exits with one line naming the variable."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.server.settings import AuditSettings
from devtools.dev_secrets import make_nats_keys
from global_errors import Language
from global_utils.config.groups import GroupedSettings
from global_utils.config.loading import load_settings
from global_utils.config.settings import parse_registry_address
from global_utils.discovery.registry import Endpoint
from global_utils.grpc.client import ClientSettings
from promotion.server.settings import PromotionSettings
from provision.databases import ROLES
from provision.settings import ProvisionSettings
from user.server.settings import UserSettings
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys

KEY = "0123456789abcdef0123456789abcdef"
PEM = new_signing_key_pem("unit test key")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment with the user service's required variables."""
    for name in (
        "JWT_PRIVATE_KEY",
        "JWT_PRIVATE_KEY_FILE",
        "HTTP_ADDRESS",
        "ACCESS_TOKEN_SECONDS",
        "REFRESH_TOKEN_SECONDS",
        "MICRO_SERVER_ADDRESS",
        "APP_LANGUAGE",
        "MDNS_INTERFACES",
        "NATS_NKEY_SEED",
        "NATS_NKEY_SEED_FILE",
        "NATS_TLS_CA_FILE",
        "NATS_TLS_SERVER_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSTGRES_CONNECT", "postgresql://u@127.0.0.1/appuser")
    monkeypatch.setenv("JWT_PRIVATE_KEY", PEM)
    monkeypatch.setenv("AUDIT_SIGNING_KEY", KEY)
    monkeypatch.setenv("AUDIT_SIGNING_KEY_ID", "user-1")
    return monkeypatch


def exit_message(env: pytest.MonkeyPatch) -> str:
    with pytest.raises(SystemExit) as exc:
        load_settings(UserSettings)
    message = str(exc.value.code)
    assert "\n" not in message
    return message


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(UserSettings)
    assert settings.server.listen == Endpoint("0.0.0.0", 50053)
    assert settings.server.app_language is Language.EN
    assert settings.broker.broker_url == "nats://127.0.0.1:4222"
    assert [k.kid for k in settings.jwt.signing_keys] == [k.kid for k in parse_signing_keys(PEM)]
    assert (settings.jwt.access_token_seconds, settings.jwt.refresh_token_seconds) == (
        900,
        7 * 86_400,
    )
    assert settings.server.http_address == "127.0.0.1:0"


def test_broker_address_may_name_every_server_of_a_cluster(env: pytest.MonkeyPatch) -> None:
    env.setenv("MICRO_BROKER_ADDRESS", "127.0.0.1:4222, nats://127.0.0.1:4223,127.0.0.1:4224")
    assert load_settings(UserSettings).broker.broker_url == (
        "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
    )


def test_nats_seed_file_gives_the_credential_and_the_services_inbox(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = make_nats_keys(tmp_path, development=True)  # with its DEVELOPMENT-ONLY comment
    env.setenv("NATS_NKEY_SEED_FILE", str(keys.seed_file("user")))
    access = load_settings(UserSettings).broker.broker_access("user")
    assert access.nkey_seed == keys.seed("user") and access.nkey_seed.startswith("SU")
    assert access.inbox_prefix == "_INBOX.user"
    assert access.connect_options()["nkeys_seed_str"] == keys.seed("user")
    assert access.tls is None
    assert keys.seed("user") not in repr(load_settings(UserSettings))  # never in a log line


def test_without_a_nats_seed_the_service_connects_without_credentials(
    env: pytest.MonkeyPatch,
) -> None:
    assert (
        "nkeys_seed_str"
        not in load_settings(UserSettings).broker.broker_access("user").connect_options()
    )


def test_bad_nats_credential_settings_name_the_variable(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("NATS_NKEY_SEED", "not-a-seed")
    assert exit_message(env) == "configuration error: NATS_NKEY_SEED: not an nkey seed (SU...)"
    env.delenv("NATS_NKEY_SEED")
    env.setenv("NATS_NKEY_SEED_FILE", str(tmp_path / "missing"))
    assert exit_message(env).startswith("configuration error: NATS_NKEY_SEED_FILE: cannot read")
    env.delenv("NATS_NKEY_SEED_FILE")
    env.setenv("NATS_TLS_CA_FILE", str(tmp_path / "missing-ca.pem"))
    assert exit_message(env).startswith("configuration error: NATS_TLS_CA_FILE: cannot read")


def test_missing_key(env: pytest.MonkeyPatch) -> None:
    env.delenv("JWT_PRIVATE_KEY")
    assert exit_message(env) == (
        "configuration error: JWT_PRIVATE_KEY: no signing key:"
        " set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE"
    )


def test_a_key_that_is_not_an_ed25519_pem_key_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_PRIVATE_KEY", KEY)
    assert exit_message(env) == "configuration error: JWT_PRIVATE_KEY: no PEM private key found"
    rsa_pem = rsa_key().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    env.setenv("JWT_PRIVATE_KEY", rsa_pem)
    assert "not an Ed25519 private key" in exit_message(env)


def test_key_file_with_two_keys_first_signs(env: pytest.MonkeyPatch, tmp_path) -> None:
    env.delenv("JWT_PRIVATE_KEY")
    second = new_signing_key_pem("previous key")
    (tmp_path / "keys.pem").write_text(PEM + second)
    env.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "keys.pem"))
    kids = [k.kid for k in load_settings(UserSettings).jwt.signing_keys]
    assert kids == [parse_signing_keys(PEM)[0].kid, parse_signing_keys(second)[0].kid]
    env.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "absent"))
    assert "cannot read" in exit_message(env)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MICRO_SERVER_ADDRESS", "no-port"),
        ("MICRO_SERVER_ADDRESS", ":99999"),
        ("APP_LANGUAGE", "de"),
        ("MDNS_INTERFACES", "127.0.0.1,not-an-ip"),
        ("MICRO_REGISTRY", "consul"),
        ("BCRYPT_ROUNDS", "99"),
        ("POSTGRES_CONNECT", ""),
    ],
)
def test_bad_values_name_their_variable(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    assert exit_message(env).startswith(f"configuration error: {variable}: ")


def test_missing_dsn(env: pytest.MonkeyPatch) -> None:
    env.delenv("POSTGRES_CONNECT")
    assert exit_message(env).startswith("configuration error: POSTGRES_CONNECT: ")


def test_static_registry_parsing() -> None:
    assert parse_registry_address("user=a:1, user=b:2,promotion=[::1]:3") == {
        "user": [Endpoint("a", 1), Endpoint("b", 2)],
        "promotion": [Endpoint("::1", 3)],
    }
    with pytest.raises(ValueError):
        parse_registry_address("user")


def test_dns_registry_parsing_keeps_an_ipv4_lists_own_commas() -> None:
    parsed = parse_registry_address(
        "user=ipv4:127.0.0.1:1,127.0.0.1:2,promotion=dns:///promotion-headless:50051", "dns"
    )
    assert {name: [e.target for e in eps] for name, eps in parsed.items()} == {
        "user": ["ipv4:127.0.0.1:1,127.0.0.1:2"],
        "promotion": ["dns:///promotion-headless:50051"],
    }
    for bad in ("user=127.0.0.1:1", "user=dns:///a:1,user=dns:///b:1", "127.0.0.1:1"):
        with pytest.raises(ValueError):
            parse_registry_address(bad, "dns")


@pytest.mark.parametrize(
    ("mode", "address"), [("static", "user=dns:///user:1"), ("dns", "user=user-headless:50053")]
)
def test_registry_address_must_fit_its_mode(
    env: pytest.MonkeyPatch, mode: str, address: str
) -> None:
    env.setenv("MICRO_REGISTRY", mode)
    env.setenv("MICRO_REGISTRY_ADDRESS", address)
    assert exit_message(env).startswith("configuration error: MICRO_REGISTRY_ADDRESS: ")


PROCESS_ENV = {
    "DB_CONNECT": "postgresql://u@127.0.0.1/audit",
    "AUDIT_PRODUCER_KEYS": f"user-1 user {KEY}",
    "POSTGRES_ADMIN_CONNECT": "postgresql://admin@127.0.0.1/postgres",
    "TIMESCALEDB_ADMIN_CONNECT": "postgresql://admin@127.0.0.1/postgres",
    **{f"{role.upper()}_PASSWORD": "development only" for role in ROLES},
}
PROCESSES: list[type[GroupedSettings]] = [
    UserSettings,
    PromotionSettings,
    AuditSettings,
    ProvisionSettings,
    ClientSettings,
]


def refuses_words(annotation: object) -> bool:
    """Whether a field of this type refuses the value "not-a-value" (numbers, flags, choices)."""
    if get_origin(annotation) is Literal:
        return "not-a-value" not in get_args(annotation)
    return annotation in (int, float, bool) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    )


@pytest.mark.parametrize("process", PROCESSES, ids=lambda cls: cls.__name__)
def test_a_bad_value_in_any_group_names_its_variable(
    env: pytest.MonkeyPatch, process: type[GroupedSettings]
) -> None:
    for variable, value in PROCESS_ENV.items():
        env.setenv(variable, value)
    load_settings(process)  # the environment is complete
    checked = []
    for name, group in process.groups().items():
        for field_name, field in group.model_fields.items():
            if not refuses_words(field.annotation):
                continue
            variable = field_name.upper()
            env.setenv(variable, "not-a-value")
            with pytest.raises(SystemExit) as exc:
                load_settings(process)
            message = str(exc.value.code)
            assert message.startswith(f"configuration error: {variable}: "), (name, message)
            assert "\n" not in message
            env.delenv(variable)
            checked.append(name)
    assert checked  # (variables holding text or paths take any word)


def test_each_variable_is_read_by_one_group() -> None:
    for process in PROCESSES:
        seen: dict[str, str] = {}
        for name, group in process.groups().items():
            for variable in group.model_fields:
                assert variable not in seen, (
                    f"{process.__name__}: {variable} in {seen.get(variable)} and {name}"
                )
                seen[variable] = name


def test_keyword_arguments_go_to_the_group_of_their_variable(env: pytest.MonkeyPatch) -> None:
    settings = UserSettings(bcrypt_rounds=4, TLS_CLIENT_AUTH=False, micro_registry="static")
    assert settings.passwords.bcrypt_rounds == 4
    assert settings.registry.micro_registry == "static"
    # what no keyword names still comes from the environment
    assert settings.db.postgres_connect == "postgresql://u@127.0.0.1/appuser"
    validated = UserSettings.model_validate(
        {"postgres_connect": "postgresql://v@127.0.0.1/x", "jwt_private_key": PEM}
        | {"audit_signing_key": KEY, "audit_signing_key_id": "user-1"}
    )
    assert validated.db.postgres_connect == "postgresql://v@127.0.0.1/x"
