"""grpcurl, a real third-party client, against every service, without proto files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.databases import service_db_env
from devtools.stack import EmbeddedPostgres
from tests.e2e.conftest import base_env

GRPCURL = shutil.which("grpcurl") or str(Path(sys.prefix) / "bin" / "grpcurl")
SEED_LOGIN = '{"email": "duck@mymail.com", "pwd": "1234"}'


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def suite(
    user_env,
    promotion_env,
    postgres: EmbeddedPostgres,
    mdns_type,
    start_process,
    audit_keys,
    nats_keys,
) -> dict[str, str]:
    """user, promotion and audit as processes; their addresses by service name."""
    audit_env = base_env() | {
        "MDNS_SERVICE_TYPE": mdns_type,
        "MICRO_SERVER_ADDRESS": "127.0.0.1:0",
        **service_db_env(postgres, "audit"),
        "MICRO_BROKER_ADDRESS": user_env["MICRO_BROKER_ADDRESS"],
        **audit_keys.consumer_env(),
        **nats_keys.client_env("audit"),
    }
    processes = {
        "user": start_process("user.server", user_env),
        "promotion": start_process("promotion.server", promotion_env),
        "audit": start_process("audit.server", audit_env),
    }
    for name, process in processes.items():
        process.wait_for_line(f"{name} ready")
    return {name: process.address for name, process in processes.items()}


def login(address: str) -> str:
    reply = grpcurl("-d", SEED_LOGIN, address, "user.UserSrv/Auth")
    assert reply.returncode == 0, reply.stderr
    return json.loads(reply.stdout)["token"]


@pytest.mark.parametrize(
    ("name", "service", "method", "body", "rpc_line"),
    [
        (
            "user",
            "user.UserSrv",
            "GetUsers",
            '{"email": "cow@mymail.com"}',
            "rpc GetUserById ( .user.SearchId ) returns ( .user.User );",
        ),
        (
            "promotion",
            "promotion.PromotionSrv",
            "GetPromotions",
            '{"name": "Promo1"}',
            "rpc GetPromotions ( .promotion.SearchParams ) returns ( .promotion.Promotions );",
        ),
        (
            "audit",
            "audit.AuditSrv",
            "GetAuditRecords",
            '{"object_name": "user", "object_id": "2234567890"}',
            "rpc GetAuditRecords ( .audit.SearchParams ) returns ( .audit.AuditRecords );",
        ),
    ],
)
def test_grpcurl_drives_every_service(suite, name, service, method, body, rpc_line) -> None:
    address = suite[name]
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {service, "grpc.health.v1.Health"} <= set(listed.stdout.split())

    described = grpcurl(address, "describe", service)
    assert rpc_line in described.stdout

    health = grpcurl("-d", json.dumps({"service": service}), address, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}

    token = login(suite["user"])
    found = grpcurl(
        "-H", f"authorization: Bearer {token}", "-d", body, address, f"{service}/{method}"
    )
    assert found.returncode == 0, found.stderr
    reply = json.loads(found.stdout)
    records = next(iter(reply.values()))
    assert records, reply

    denied = grpcurl("-d", body, address, f"{service}/{method}")
    assert denied.returncode != 0 and "Code: Unauthenticated" in denied.stderr

    invalid = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"page_size": -1}',
        address,
        f"{service}/{method}",
    )
    assert "Code: InvalidArgument" in invalid.stderr


def test_grpcurl_sees_user_details_and_statuses(suite) -> None:
    token = login(suite["user"])
    found = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"email": "cow@mymail.com"}',
        suite["user"],
        "user.UserSrv/GetUsers",
    )
    (user,) = json.loads(found.stdout)["user"]
    # grpcurl prints the proto field names (valid_from); protobuf's own JSON uses validFrom.
    assert user["name"] == "Awesome Cow" and user["valid_from"] == "2000-01-01T00:00:00Z"
    assert "pwd" not in user
    missing = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"id": 42}',
        suite["promotion"],
        "promotion.PromotionSrv/GetPromotionById",
    )
    assert "Code: NotFound" in missing.stderr and "promotion 42 not found" in missing.stderr
    invalid = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"firstname": "only"}',
        suite["user"],
        "user.UserSrv/CreateUser",
    )
    assert "Code: InvalidArgument" in invalid.stderr and "lastname is required" in invalid.stderr
