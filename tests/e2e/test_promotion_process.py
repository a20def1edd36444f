"""The promotion service as a process: CLI scenario over mDNS, user-service failover."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import grpc

from devtools.stack import REPO_ROOT, free_port
from global_utils.auth import bearer_metadata
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
    doomed = start_process(
        "user.server", user_env | {"MICRO_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    )
    promotion = start_process("promotion.server", promotion_env)
    for process, line in (
        (survivor, "user ready"),
        (doomed, "user ready"),
        (promotion, "promotion ready"),
    ):
        await asyncio.to_thread(process.wait_for_line, line)

    async with (
        grpc.aio.insecure_channel(user_env["MICRO_SERVER_ADDRESS"]) as user_channel,
        grpc.aio.insecure_channel(promotion_env["MICRO_SERVER_ADDRESS"]) as channel,
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
