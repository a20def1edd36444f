"""grpcurl, a real third-party client, against the user service with no proto files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GRPCURL = shutil.which("grpcurl") or str(Path(sys.prefix) / "bin" / "grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def user_address(user_env, start_process) -> str:
    """A running user service process; its address."""
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    return user_env["MICRO_SERVER_ADDRESS"]


def test_grpcurl_drives_the_user_service(user_address: str) -> None:
    listed = grpcurl(user_address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"user.UserSrv", "grpc.health.v1.Health"} <= set(listed.stdout.split())

    described = grpcurl(user_address, "describe", "user.UserSrv")
    assert "rpc GetUserById ( .user.SearchId ) returns ( .user.User );" in described.stdout

    health = grpcurl(
        "-d", '{"service": "user.UserSrv"}', user_address, "grpc.health.v1.Health/Check"
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}

    login = grpcurl(
        "-d", '{"email": "duck@mymail.com", "pwd": "1234"}', user_address, "user.UserSrv/Auth"
    )
    assert login.returncode == 0, login.stderr
    token = json.loads(login.stdout)["token"]

    found = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"email": "cow@mymail.com"}',
        user_address,
        "user.UserSrv/GetUsers",
    )
    assert found.returncode == 0, found.stderr
    (user,) = json.loads(found.stdout)["user"]
    # grpcurl prints the proto field names (valid_from); protobuf's own JSON uses validFrom.
    assert user["name"] == "Awesome Cow" and user["valid_from"] == "2000-01-01T00:00:00Z"
    assert "pwd" not in user

    denied = grpcurl("-d", "{}", user_address, "user.UserSrv/GetUsers")
    assert denied.returncode != 0
    assert "Code: Unauthenticated" in denied.stderr

    invalid = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"firstname": "only"}',
        user_address,
        "user.UserSrv/CreateUser",
    )
    assert "Code: InvalidArgument" in invalid.stderr
    assert "lastname is required" in invalid.stderr
