"""Tracing as processes run it: off (OTEL_* unset) it loads neither the OpenTelemetry SDK nor an
exporter; on, a service exports its spans over OTLP (gRPC or HTTP, as the standard variables
choose) and its log lines carry the ids; an unknown protocol stops it at start."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest

from devtools.otlp_sink import OtlpHttpSink, OtlpSink
from devtools.stack import REPO_ROOT
from tests.helpers import eventually

# A user service built and run in a process of its own from its environment, one change made
# through it, then the OpenTelemetry modules the process has loaded.
SERVE_ONE_CHANGE = """
import asyncio, json, sys
import grpc
from global_utils.identity.principal import bearer_metadata
from global_utils.config.loading import load_settings
from tests.helpers import new_user, serving
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings

async def main():
    async with serving(build(load_settings(UserSettings))) as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        login = await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
        await stub.CreateUser(new_user(), metadata=bearer_metadata(login.token))

asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
"""


def serve_one_change(env: dict[str, str]) -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_CHANGE],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    *printed, modules = result.stdout.strip().splitlines()
    return json.loads(modules), "\n".join(printed)


def sdk_or_exporter(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))]


def test_with_otel_unset_no_sdk_or_exporter_is_loaded(user_env: dict[str, str]) -> None:
    modules, printed = serve_one_change(user_env)
    assert sdk_or_exporter(modules) == []
    assert printed == ""
    # the control: the same run with an exporter named loads the SDK and exports (to stdout)
    modules, printed = serve_one_change(user_env | {"OTEL_TRACES_EXPORTER": "console"})
    assert "opentelemetry.sdk.trace" in modules
    assert '"name": "user.UserSrv/CreateUser"' in printed


@pytest.mark.parametrize(
    ("protocol", "variables"),
    [
        # as before: no protocol named is gRPC
        ("grpc", {}),
        ("http/protobuf", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}),
        # the traces variable wins over the general one
        (
            "http/protobuf",
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
        ),
    ],
    ids=["grpc", "http", "http-by-traces-variable"],
)
async def test_a_service_process_exports_its_spans_over_otlp(
    user_env: dict[str, str], start_process, protocol: str, variables: dict[str, str]
) -> None:
    sink = OtlpSink() if protocol == "grpc" else OtlpHttpSink()
    await sink.start()
    try:
        env = (
            user_env
            | variables
            | {
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon after the call
                "OTEL_SERVICE_NAME": "user-e2e",
            }
        )
        server = start_process("user.server", env)
        server.wait_for_line("user ready")
        # a refused login through the CLI (not blocking the loop the sink answers on)
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "user.client",
            "login",
            env=env
            | {
                "SERVERADDRESS": server.address,
                "MICRO_REGISTRY": "static",
                "CLI_PASSWORD": "wrong",
            },
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await cli.wait() == 1

        async def exported() -> bool:
            return any(s.name == "user.UserSrv/Auth" for s in sink.spans)

        await eventually(exported, timeout=20, what="the Auth span at the OTLP sink")
        auth = next(s for s in sink.spans if s.name == "user.UserSrv/Auth")
        assert auth.service == "user-e2e"
        # the refused login's warning line carries the call's trace id
        server.wait_for_line(f"trace_id={auth.trace_id}")
        [line] = [x for x in server.output.splitlines() if f"trace_id={auth.trace_id}" in x]
        assert "WARNING" in line and re.search(r"span_id=[0-9a-f]{16}\]", line)
        assert server.terminate() == 0
        if isinstance(sink, OtlpHttpSink):
            # every export went to the general endpoint's v1/traces, and was taken
            assert sink.requests
            assert {(r.method, r.path, r.status) for r in sink.requests} == {
                ("POST", "/v1/traces", 200)
            }
    finally:
        await sink.stop()


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_an_unknown_protocol_stops_the_service_at_start_with_one_line(
    user_env: dict[str, str], variable: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "user.server"],
        env=user_env | {variable: "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"configuration error: {variable}: unsupported OTLP protocol 'http/json' "
        "(grpc or http/protobuf)"
    )
    assert "user ready" not in result.stdout + result.stderr
