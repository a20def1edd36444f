"""The user service as a process: the CLI scenario over mDNS, signals, configuration errors."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

import devtools.processes
from devtools.processes import ServiceProcess, started_on_free_port
from devtools.stack import REPO_ROOT, free_port
from global_utils.identity.token_keys import keys_from_jwks
from tests.e2e.conftest import base_env
from user.server.signing_keys import parse_signing_keys


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "user.client", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_scenario_passes_through_mdns_discovery(user_env, cli_env, start_process) -> None:
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    result = run_cli(cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "login as duck@mymail.com: ok",
        "get it again: ok (NOT_FOUND",
        "all 10 steps passed",
    ):
        assert step in result.stdout

    one = run_cli(cli_env, "search", "--company", "Marvel")
    assert one.returncode == 0 and '"email": "ant@mymail.com"' in one.stdout

    missing = run_cli(cli_env, "get", "1")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr

    assert server.terminate() == 0


def test_cli_reaches_serveraddress_directly(user_env, start_process) -> None:
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    env = base_env() | {
        "SERVERADDRESS": server.address,
        "MICRO_REGISTRY": "static",
        "CLI_PASSWORD": "1234",
    }
    result = run_cli(env, "login")
    assert result.returncode == 0, result.stderr
    assert '"valid": true' in result.stdout
    server.terminate()


def test_cli_with_wrong_password_fails_cleanly(user_env, start_process) -> None:
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    env = base_env() | {"SERVERADDRESS": server.address}
    result = run_cli(env, "--password", "nope", "login")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: UNAUTHENTICATED: invalid email or password"
    server.terminate()


def test_sigterm_stops_cleanly_with_exit_zero(user_env, start_process) -> None:
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    workers = _hashing_processes(server.proc.pid)
    assert workers  # started with the service
    assert server.terminate() == 0
    lines = server.output.splitlines()
    assert any("user stopped" in line for line in lines)
    assert not psutil.wait_procs(workers, timeout=10)[1]  # its hashing processes too
    assert not any("Traceback" in line for line in lines)


def test_sigterm_while_starting_stops_it_before_it_serves(
    user_env, start_process, tmp_path: Path
) -> None:
    """A container's SIGTERM just after its start (PID 1 drops a signal it has no handler
    for): the service, held at reading its database password from a pipe, gets SIGTERM
    before its event loop exists, then its password; it must end with exit 0 without
    serving, rather than die of the signal (here) or ignore it (as PID 1)."""
    password = Path(user_env["POSTGRES_PASSWORD_FILE"]).read_bytes()
    pipe = tmp_path / "password-pipe"
    os.mkfifo(pipe)
    server = start_process("user.server", user_env | {"POSTGRES_PASSWORD_FILE": str(pipe)})
    writer = _opened_for_reading(pipe, server, timeout=60)
    assert writer is not None, server.output
    server.proc.send_signal(signal.SIGTERM)
    while writer is not None:  # the settings read the file more than once: each read served
        with contextlib.suppress(BrokenPipeError), os.fdopen(writer, "wb") as pipe_end:
            pipe_end.write(password)  # (broken: the open we saw was the last read's, ending)
        writer = _opened_for_reading(pipe, server, timeout=60)
    assert server.proc.wait(timeout=30) == 0
    lines = server.output.splitlines()
    assert any("user stopped: SIGTERM came while it was starting" in line for line in lines)
    assert not any("user ready" in line or "Traceback" in line for line in lines)


def _opened_for_reading(pipe: Path, server: ServiceProcess, timeout: float) -> int | None:
    """The write end of pipe once the server opens it to read (it then waits for our bytes);
    None once the server has exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            writer = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: nobody has it open for reading
            assert exc.errno == errno.ENXIO, exc
            if server.proc.poll() is not None:
                return None
            assert time.monotonic() < deadline, "the service neither read the pipe nor ended"
            time.sleep(0.01)  # polling the condition above, with its deadline
            continue
        os.set_blocking(writer, True)
        return writer


def test_missing_jwt_key_refuses_to_start_with_one_line(user_env, start_process) -> None:
    env = {k: v for k, v in user_env.items() if k != "JWT_PRIVATE_KEY_FILE"}
    server = start_process("user.server", env)
    assert server.proc.wait(timeout=30) == 1
    assert server.output.strip().splitlines() == [
        "configuration error: JWT_PRIVATE_KEY: no signing key:"
        " set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE"
    ]


def test_bad_variable_is_named_in_one_line(user_env, start_process) -> None:
    server = start_process("user.server", user_env | {"APP_LANGUAGE": "de"})
    assert server.proc.wait(timeout=30) == 1
    output = server.output.strip().splitlines()
    assert len(output) == 1 and output[0].startswith("configuration error: APP_LANGUAGE:")


def test_signing_key_given_directly_and_jwks_served_on_the_reported_http_port(
    user_env, start_process, jwt_key
) -> None:
    env = {k: v for k, v in user_env.items() if k != "JWT_PRIVATE_KEY_FILE"}
    server = start_process("user.server", env | {"JWT_PRIVATE_KEY": jwt_key})
    server.wait_for_line("user ready")
    ready = next(line for line in server.output.splitlines() if "user ready" in line)
    http_port = int(ready.rsplit("HTTP 127.0.0.1:", 1)[1].split()[0].rstrip(","))
    with urllib.request.urlopen(
        f"http://127.0.0.1:{http_port}/.well-known/jwks.json", timeout=10
    ) as response:
        assert response.headers["Content-Type"] == "application/jwk-set+json"
        keys = keys_from_jwks(response.read())
    assert list(keys) == [k.kid for k in parse_signing_keys(jwt_key)]
    cli = run_cli(base_env() | {"SERVERADDRESS": server.address, "CLI_PASSWORD": "1234"}, "login")
    assert cli.returncode == 0, cli.stderr
    assert server.terminate() == 0


def test_port_in_use_is_a_clear_exit(user_env, start_process) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_process(
            "user.server", user_env | {"MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}"}
        )
        assert server.proc.wait(timeout=30) == 1
    last = server.output.strip().splitlines()[-1]
    assert last.startswith(f"cannot start: Failed to bind to address 127.0.0.1:{port}")
    assert "database not ready" not in server.output  # it stopped before connecting anywhere


def test_a_service_asked_for_port_0_serves_on_the_port_its_ready_line_names(
    user_env, start_process
) -> None:
    server = start_process("user.server", user_env | {"MICRO_SERVER_ADDRESS": "127.0.0.1:0"})
    host, port = server.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    listening = {c.laddr.port for c in psutil.Process(server.proc.pid).net_connections("tcp")}
    assert int(port) in listening
    env = base_env() | {"SERVERADDRESS": server.address, "CLI_PASSWORD": "1234"}
    assert run_cli(env, "login").returncode == 0
    assert server.terminate() == 0


def test_a_service_whose_picked_port_is_taken_starts_again_on_another(
    user_env, start_process, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        picks = [taken_port]  # the first pick is the taken port, the next ones are free
        monkeypatch.setattr(
            devtools.processes, "free_port", lambda: picks.pop() if picks else free_port()
        )
        launched = []

        def launch(port: int) -> ServiceProcess:
            env = user_env | {"MICRO_SERVER_ADDRESS": f"127.0.0.1:{port}"}
            launched.append(start_process("user.server", env))
            return launched[-1]

        with caplog.at_level(logging.WARNING, logger="devtools.processes"):
            server = started_on_free_port(launch, "user ready")
    first, second = launched
    assert first.proc.returncode == 1 and second is server
    [line] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert f"Failed to bind to address 127.0.0.1:{taken_port}" in line
    assert server.env["MICRO_SERVER_ADDRESS"] == server.address != f"127.0.0.1:{taken_port}"
    env = base_env() | {"SERVERADDRESS": server.address, "CLI_PASSWORD": "1234"}
    assert run_cli(env, "login").returncode == 0
    assert server.terminate() == 0


def _hashing_processes(server_pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(server_pid).children()
        if "user.server.hashing_worker" in child.cmdline()
    ]


def test_password_hashing_processes_are_small_and_die_with_the_service(
    user_env, start_process
) -> None:
    server = start_process("user.server", user_env)
    server.wait_for_line("user ready")
    env = base_env() | {"SERVERADDRESS": server.address, "CLI_PASSWORD": "1234"}
    assert run_cli(env, "login").returncode == 0  # a hash has run
    workers = _hashing_processes(server.proc.pid)
    assert workers
    # They import bcrypt, not the service (grpc, asyncpg, ...): a fraction of its memory.
    service_rss = psutil.Process(server.proc.pid).memory_info().rss
    assert all(w.memory_info().rss < service_rss / 2 for w in workers)

    server.proc.send_signal(signal.SIGKILL)  # no chance to stop them itself
    server.proc.wait(timeout=10)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"hashing processes outlived a killed service: {alive}"
