"""Service processes (`python -m <module>`) with their output in a log file."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from devtools.stack import BIND_ATTEMPTS, REPO_ROOT, PortTaken, free_port, wait_until

logger = logging.getLogger(__name__)

# What a service's ready line says about its gRPC port (the port it got, for :0), and the
# line it exits with when it cannot bind.
_READY_ADDRESS = re.compile(r" ready: gRPC \S+ on ([^\s,]+)")
BIND_FAILED = "cannot start: Failed to bind to address"


class ServiceProcess:
    """A module started as its own process (with args), output captured to log."""

    def __init__(
        self, module: str, env: dict[str, str], log: Path, args: Sequence[str] = ()
    ) -> None:
        self.module = module
        self.env = env
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        # the process writes to its own copy of the descriptor: ours closes once it has started
        with open(log, "wb") as output:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env,
                cwd=REPO_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches only the runner
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        """Waits for text in the output; PortTaken if the process exited because its gRPC port
        was taken, RuntimeError if it exited otherwise."""

        def seen() -> bool:
            if self.proc.poll() is not None:
                output = self.output
                failed = [line for line in output.splitlines() if line.startswith(BIND_FAILED)]
                if failed:
                    raise PortTaken(f"{self.module}: {failed[-1]}")
                raise RuntimeError(f"{self.module} exited {self.proc.returncode}:\n{output}")
            return text in self.output

        wait_until(seen, timeout, f"{text!r} from {self.module}")

    @property
    def address(self) -> str:
        """host:port the process serves gRPC on, as its ready line says (waits for that line):
        the port it got when MICRO_SERVER_ADDRESS asked for :0."""
        found = _READY_ADDRESS.search(self.output)
        if found is None:
            self.wait_for_line(" ready: gRPC ")
            found = _READY_ADDRESS.search(self.output)
        assert found is not None, self.output
        return found[1]

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then the exit status (SIGKILL after timeout)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def started_on_free_port(
    launch: Callable[[int], ServiceProcess], ready: str, *, timeout: float = 30
) -> ServiceProcess:
    """launch(port) with a picked free port, waited for until its output has ready. For a
    process that must keep a known port (restarted on it, or the same port on several
    addresses): when another process took the port between the pick and the bind, launch runs
    again with a new one, up to BIND_ATTEMPTS times (one WARNING line each). Processes free to
    take any port are simpler started on :0 (see ServiceProcess.address)."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        process = launch(free_port())
        try:
            process.wait_for_line(ready, timeout)
        except PortTaken as taken:
            process.terminate()  # exited already: this closes its log
            if attempt == BIND_ATTEMPTS:
                raise
            logger.warning("%s; retrying on another port", taken)
            continue
        return process
    raise AssertionError("unreachable")
