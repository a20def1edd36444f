"""`make bench-compare`: the audit and read benches of a revision and of the working tree,
alternated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stack import REPO_ROOT
from tests.e2e.conftest import base_env

SIDES = ("old", "new")


# Four benches, each starting its own servers and services (an ingest run starts user,
# promotion and audit, whose relays publish the events): over the suite's 120 s default on a
# busy machine; the bench's own subprocess timeout (420 s) still bounds it.
@pytest.mark.timeout(480)
def test_compare_runs_both_trees_and_removes_the_checkout(tmp_path: Path) -> None:
    bench_results = REPO_ROOT / "bench" / "audit-results.json"
    before = bench_results.stat().st_mtime_ns if bench_results.exists() else None
    out = tmp_path / "compare.json"
    result = subprocess.run(
        [sys.executable, "-m", "devtools.bench_compare", "HEAD"]
        + ["--rounds", "1", "--events", "500", "--read-seconds", "0.5", "--out", str(out)],
        env=base_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert (
        summary["commit"]
        == subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for side in SIDES:
        [run] = summary["runs"][side]
        assert run["events"] == 500
        assert summary[side]["best_events_per_s"] > 0
        assert summary[side]["median"]["ingest_events_per_s"] > 0
        assert summary[side]["median"]["lag_p99_ms"] > 0
        assert summary[side]["median"]["audit_cpu_us_per_event"] >= 0
    assert summary["new_over_old"]["median"]["ingest_events_per_s"] > 0
    assert len(summary["new_over_old"]["pairwise_events_per_s"]) == 1
    assert "events/s, median" in result.stdout
    # A tiny read round on each side: every read path called through the real services.
    for side in SIDES:
        [reads] = summary["read_runs"][side]
        assert set(reads) == {"GetUserById", "GetUsers", "GetPromotionById"}
        for path, row in reads.items():
            assert row["calls"] > 0, path
            assert row["errors"] == 0, path
            assert row["cpu_us_per_call"] > 0, path
    for path in ("GetUserById", "GetUsers", "GetPromotionById"):
        assert summary["reads"][path]["new_over_old"]["calls_per_s"] > 0
        assert len(summary["reads"][path]["pairwise"]["cpu_us_per_call"]) == 1
        assert f"{path} calls/s" in result.stdout
    # The temporary checkout is gone, from the disk and from git's list of worktrees.
    old_tree = Path(summary["old_tree"])
    assert not old_tree.exists()
    worktrees = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "list", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"worktree {old_tree}\n" not in worktrees
    # The runs' own results went to temporary files, not over make bench-audit's.
    after = bench_results.stat().st_mtime_ns if bench_results.exists() else None
    assert after == before
