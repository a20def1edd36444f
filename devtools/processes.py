"""Service processes (`python -m <module>`) with their output in a log file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.stack import REPO_ROOT, wait_until


class ServiceProcess:
    """A module started as its own process (with args), output captured to log."""

    def __init__(
        self, module: str, env: dict[str, str], log: Path, args: Sequence[str] = ()
    ) -> None:
        self.module = module
        self.env = env
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in terminate()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches only the runner
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited {self.proc.returncode}:\n{self.output}")
            return text in self.output

        wait_until(seen, timeout, f"{text!r} from {self.module}")

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then the exit status (SIGKILL after timeout)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()
