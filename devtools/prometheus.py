"""A real Prometheus (the machine's binary, Debian's prometheus package) on a free loopback
port, scraping services' /metrics with the project's alert rules: for tests and for
devtools/screenshot.py. Its HTTP API answers from a thread, never the caller's event loop."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtools.stack import REPO_ROOT

# The line prometheus logs once its web listener is bound, with the port it got.
_LISTENING = re.compile(r'msg="Listening on" address=127\.0\.0\.1:(\d+)')

RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not on PATH: apt-get install prometheus")
    return binary


def scrape_config(jobs: Mapping[str, list[str]], interval: str = "1s") -> str:
    """A configuration scraping each job's targets (host:port) every interval, the project's
    alert rules loaded (JSON is YAML)."""
    return json.dumps(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        },
        indent=2,
    )


class LocalPrometheus:
    """prometheus on 127.0.0.1 with its data in folder; start() / stop(). Its port is one the
    system chooses on the first start (read from its log), the same on later starts."""

    def __init__(self, folder: Path, jobs: Mapping[str, list[str]], interval: str = "1s") -> None:
        self.folder = folder
        self.port = 0
        self._jobs = dict(jobs)
        self._interval = interval
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> LocalPrometheus:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "prometheus.yml"
        config.write_text(scrape_config(self._jobs, self._interval))
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout
        while not self._listening() or not self._ready():
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready after {timeout} s")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _listening(self) -> bool:
        """Whether the log says where this start listens (its port, when it had none yet)."""
        found = _LISTENING.findall(self.log_path.read_text(errors="replace"))
        if found:
            self.port = int(found[-1])
        return bool(found)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>: its data, or an AssertionError naming the error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"{path}: {body}")
        return body["data"]

    def targets(self) -> dict[str, str]:
        """job -> health of its (single) active target."""
        return {
            target["labels"]["job"]: target["health"]
            for target in self.api("targets", state="active")["activeTargets"]
        }

    def query(self, promql: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=promql)["result"])

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))
