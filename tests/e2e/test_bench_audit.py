"""`make bench-audit`: the events it measures went through the services' own outbox relays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench_audit import DRAIN_ROUNDS
from devtools.dev_secrets import development_keys
from devtools.stack import REPO_ROOT
from tests.e2e.conftest import base_env

EVENTS = 300


def test_a_tiny_run_publishes_every_event_through_the_relays(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = subprocess.run(
        [sys.executable, "-m", "devtools.bench_audit"]
        + ["--events", str(EVENTS), "--rate", "200", "--seconds", "0.5", "--out", str(out)],
        env=base_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = json.loads(out.read_text())
    assert run["ingest_source"] == "relays"
    relayed = run["relayed"]
    keys = development_keys()
    # The backlogs (one per drain round) and the burst, EVENTS each shared by the two
    # producers, the change that wakes each resumed consumer and the lag phase's 100 changes
    # (the user service's) were written into the services' outboxes, marked sent by their
    # relays once JetStream had them, and every one of them is in the audit table.
    shares = EVENTS // 2 * (DRAIN_ROUNDS + 1)
    written = {"user": shares + DRAIN_ROUNDS + 100, "promotion": shares}
    for producer in ("user", "promotion"):
        assert relayed[producer] == {
            "outbox_sent": written[producer],
            "outbox_unsent": 0,
            "sent_and_stored": written[producer],
            "key_id": keys.key_id(producer),
        }
    # What travelled carries each producer's own key id, and only events of these two.
    assert relayed["stream_key_ids"] == {
        "user": [keys.key_id("user")],
        "promotion": [keys.key_id("promotion")],
    }
    # The relays sent the backlog in envelopes (AUDIT_ENVELOPE_EVENTS, the services' default):
    # fewer messages than events, at least one per relay.
    assert 2 <= run["publish_messages"] < EVENTS
    for key in ("ingest_events_per_s", "burst_events_per_s", "copy_rows_per_s"):
        assert run[key] > 0, key
    drains = run["ingest_runs_events_per_s"]
    assert len(drains) == DRAIN_ROUNDS and sorted(drains)[DRAIN_ROUNDS // 2] == pytest.approx(
        run["ingest_events_per_s"], abs=1
    )
    for process in ("user_relay", "promotion_relay", "audit", "nats", "postgres"):
        assert f"burst_{process}_cpu_us_per_event" in run, process
