"""The web UI in a real browser: Debian's chromium, driven by Playwright (nothing downloaded),
against the suite as `make run` starts it on loopback (the gateway serving web/build)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from devtools.run import WEB_BUILD
from devtools.stack import REPO_ROOT, free_port, wait_until
from devtools.suite import load_suite
from tests.e2e.conftest import base_env
from tests.helpers import chromium_path

# Screenshots of failed tests land here (git ignores it).
FAILURES = REPO_ROOT / "test-results" / "browser"
# WEB_UI_SCREENSHOTS=<folder> also saves one screenshot of each page there (docs/web-ui/).
DOC_SHOTS = os.environ.get("WEB_UI_SCREENSHOTS", "")
ADMIN = ("duck@mymail.com", "1234")
ADMIN_NAME = "Super Duck"


@dataclass(frozen=True)
class Suite:
    """The running suite: the gateway's URL (the UI and the Connect API)."""

    url: str

    def call(self, method: str, body: dict[str, Any], token: str = "") -> dict[str, Any]:
        """A Connect JSON call, as curl would make it; raises on a refused call."""
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"{self.url}/{method}", data=json.dumps(body).encode(), headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def token(self, email: str, password: str) -> str:
        return str(self.call("user.UserSrv/Auth", {"email": email, "pwd": password})["token"])


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """`python -m devtools.run` (make run) on free loopback ports, its own mDNS type and data."""
    assert (WEB_BUILD / "index.html").is_file(), "the UI is not built: run make web"
    run_dir = tmp_path_factory.mktemp("web-suite")
    ports = {f"{s.name.upper()}_PORT": str(free_port()) for s in load_suite().services}
    gateway_port = free_port()
    env = (
        base_env()
        | ports
        | {
            "PG_PORT": str(free_port()),
            "NATS_PORT": str(free_port()),
            "GATEWAY_PORT": str(gateway_port),
            "GOTEMP_RUN_DIR": str(run_dir / "run"),
            "MDNS_SERVICE_TYPE": f"_gt-{uuid.uuid4().hex[:8]}._tcp.local.",
        }
    )
    env.pop("GATEWAY_STATIC_DIR", None)
    log = run_dir / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: "Ctrl-C stops everything" in log.read_text() or proc.poll() is not None,
                180,
                "the suite to be up",
            )
            assert proc.poll() is None, log.read_text()[-3000:]
            assert "Web UI: " in log.read_text(), "make run did not serve the UI"
            yield Suite(f"http://127.0.0.1:{gateway_port}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# Module scope: the sync driver runs an event loop of its own in this thread until it stops,
# which the asyncio tests of any later module could not run beside.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (one per module)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless chromium for every test, used one test at a time (two cores)."""
    launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
    yield launched
    launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, suite: Suite, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no stored session) on the suite; a screenshot if the test
    fails."""
    context = browser.new_context(base_url=suite.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    # what the page said, printed when the test fails
    said: list[str] = []
    tab.on("pageerror", lambda error: said.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda m: (
            said.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    tab.on(
        "requestfailed", lambda r: said.append(f"request failed: {r.method} {r.url} {r.failure}")
    )
    try:
        yield tab
    finally:
        if request.node.stash.get(FAILED, False):
            FAILURES.mkdir(parents=True, exist_ok=True)
            shot = FAILURES / f"{request.node.name}.png"
            tab.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot} (at {tab.url})")
            print("\n".join(said))
        context.close()


def document(page: Page, name: str) -> None:
    """With WEB_UI_SCREENSHOTS set, the page as it is now, for the docs."""
    if DOC_SHOTS:
        page.wait_for_load_state("networkidle")
        folder = Path(DOC_SHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))
