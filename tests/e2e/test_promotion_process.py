"""The promotion service as a process: CLI scenario over mDNS, user-service failover, discount
types by name."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from devtools.stack import REPO_ROOT
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from user.proto import user_pb2, user_pb2_grpc


def test_cli_scenario_passes_through_mdns_discovery(
    user_env, promotion_env, cli_env, start_process
) -> None:
    user = start_process("user.server", user_env)
    promotion = start_process("promotion.server", promotion_env)
    user.wait_for_line("user ready")
    promotion.wait_for_line("promotion ready")
    result = subprocess.run(
        [sys.executable, "-m", "promotion.client"],
        env=cli_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "create a promotion with two products: ok",
        "update description and a discount: ok",
        "get it again: ok (NOT_FOUND",
        "search customer 3308341401806443521: ok",
        "Promo1, Promo2",
        "all 6 steps passed",
    ):
        assert step in result.stdout
    assert promotion.terminate() == 0 and user.terminate() == 0
    assert "promotion stopped" in promotion.output


async def test_killed_user_instance_is_failed_over(user_env, promotion_env, start_process) -> None:
    # Two user instances; one is killed without unregistering (its mDNS record goes stale).
    survivor = start_process("user.server", user_env)
    doomed = start_process("user.server", user_env)
    # remote verification: every fresh token is a ValidateToken call (local verification
    # would ask a user instance for keys once)
    promotion = start_process("promotion.server", promotion_env | {"TOKEN_VERIFICATION": "remote"})
    for process, line in (
        (survivor, "user ready"),
        (doomed, "user ready"),
        (promotion, "promotion ready"),
    ):
        await asyncio.to_thread(process.wait_for_line, line)

    async with (
        grpc.aio.insecure_channel(survivor.address) as user_channel,
        grpc.aio.insecure_channel(promotion.address) as channel,
    ):
        users = user_pb2_grpc.UserSrvStub(user_channel)
        stub = promotion_pb2_grpc.PromotionSrvStub(channel)
        login = user_pb2.User(email="cow@mymail.com", pwd="1234")

        async def call_with_a_fresh_token() -> None:
            # Every token is new (unique jti), so it misses the cache and a user instance
            # must validate it.
            token = (await users.Auth(login)).token
            reply = await stub.GetPromotions(
                promotion_pb2.SearchParams(name="Promo2"), metadata=bearer_metadata(token)
            )
            assert [p.name for p in reply.promotion] == ["Promo2"]

        await call_with_a_fresh_token()
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait(timeout=10)
        # Each call picks an instance at random: keep calling until one has hit the dead
        # instance and failed over (1 in 2 per call; 100 calls bound it), then a few more.
        failover = "failed (UNAVAILABLE); trying another"
        calls = 0
        while failover not in promotion.output and calls < 100:
            await call_with_a_fresh_token()
            calls += 1
        assert failover in promotion.output
        for _ in range(5):
            await call_with_a_fresh_token()
    assert promotion.terminate() == 0


GRPCURL = shutil.which("grpcurl") or str(Path(sys.prefix) / "bin" / "grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def test_discount_types_are_numbers_in_and_names_out(
    user_env, promotion_env, cli_env, start_process
) -> None:
    user = start_process("user.server", user_env)
    promotion = start_process("promotion.server", promotion_env)
    user.wait_for_line("user ready")
    promotion.wait_for_line("promotion ready")
    address = promotion.address

    described = grpcurl(address, "describe", "promotion.DiscountType")
    assert described.returncode == 0, described.stderr
    for line in ("DISCOUNT_TYPE_PERCENTAGE = 1;", "DISCOUNT_TYPE_AMOUNT = 2;"):
        assert line in described.stdout

    login = grpcurl(
        "-d",
        '{"email": "duck@mymail.com", "pwd": "1234"}',
        user.address,
        "user.UserSrv/Auth",
    )
    token = json.loads(login.stdout)["token"]
    body = {
        "name": "typed by number",
        "customer_id": 5,
        "valid_from": "2024-01-01T00:00:00Z",
        "valid_thru": "2025-01-01T00:00:00Z",
        "product": [{"id": 1, "discount": [{"value": 10, "type": 1}, {"value": 2, "type": 2}]}],
    }
    created = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        json.dumps(body),
        address,
        "promotion.PromotionSrv/CreatePromotion",
    )
    assert created.returncode == 0, created.stderr
    discounts = json.loads(created.stdout)["promotion"]["product"][0]["discount"]
    assert [d["type"] for d in discounts] == ["DISCOUNT_TYPE_PERCENTAGE", "DISCOUNT_TYPE_AMOUNT"]

    shown = subprocess.run(
        [sys.executable, "-m", "promotion.client", "search", "--name", "Promo1"],
        env=cli_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (promo1,) = json.loads(shown.stdout)["promotion"]
    assert promo1["product"][0]["discount"][0]["type"] == "DISCOUNT_TYPE_PERCENTAGE"
    assert promotion.terminate() == 0 and user.terminate() == 0
