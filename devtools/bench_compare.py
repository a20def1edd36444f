"""Audit ingest of an older revision against the working tree (`make bench-compare REV=...`).

One `make bench-audit` run on a small shared host swings by ±20 %, so two runs minutes apart say
nothing about a 10 % difference. This tool runs the old revision's own bench (from a temporary
`git worktree`) and the working tree's alternately in the same minutes, each a fresh process,
in the order old-new, new-old, ... so a drift of the host weighs on both sides alike, and it
compares medians and bests rather than single runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.bench_audit import write_json
from devtools.stack import REPO_ROOT

RATE = "ingest_events_per_s"
# What each side reports by its median, with the label of its table row.
MEDIANS = {
    RATE: "events/s",
    "audit_cpu_us_per_event": "CPU µs/event: audit",
    "nats_cpu_us_per_event": "CPU µs/event: NATS",
    "postgres_cpu_us_per_event": "CPU µs/event: PostgreSQL",
    "lag_p99_ms": "change -> row lag p99 (ms)",
}
MISSING = "–"
IMPORT_MARK = "bench_compare: imported "
# Runs a tree's module with that tree, and only it, importable: the venv's editable install
# points at the main checkout and would otherwise answer for every package the tree lacks.
# It tells the parent on stderr where the code came from, which the parent checks.
BOOTSTRAP = f"""\
import runpy, signal, sys
# Ctrl-C arrives forwarded as SIGINT, also when this was started with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
tree, module = sys.argv[1], sys.argv[2]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, tree)
import audit, devtools
for package in (audit, devtools):
    print({IMPORT_MARK!r} + package.__file__, file=sys.stderr)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Side:
    """One side of the comparison ("old" or "new") and the source tree it runs."""

    name: str
    tree: Path


def median_of(runs: Sequence[Mapping[str, float]], key: str) -> float | None:
    """The median of key over the runs that report it; None when none does."""
    values = [run[key] for run in runs if key in run]
    return statistics.median(values) if values else None


def ratio(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None or old == 0 else new / old


def summarize(
    old: Sequence[Mapping[str, float]], new: Sequence[Mapping[str, float]]
) -> dict[str, Any]:
    """Per side the medians and the best rate; new/old of each median, of the bests, and of
    each round's pair of runs (a None wherever a side lacks the number)."""
    sides: dict[str, dict[str, Any]] = {}
    for name, runs in (("old", old), ("new", new)):
        rates = [run[RATE] for run in runs if RATE in run]
        sides[name] = {
            "median": {key: median_of(runs, key) for key in MEDIANS},
            "best_events_per_s": max(rates) if rates else None,
        }
    pairwise = [ratio(n.get(RATE), o.get(RATE)) for o, n in zip(old, new, strict=True)]
    known = [r for r in pairwise if r is not None]
    return {
        **sides,
        "new_over_old": {
            "median": {
                key: ratio(sides["new"]["median"][key], sides["old"]["median"][key])
                for key in MEDIANS
            },
            "best_events_per_s": ratio(
                sides["new"]["best_events_per_s"], sides["old"]["best_events_per_s"]
            ),
            "pairwise_events_per_s": pairwise,
            "pairwise_median_events_per_s": statistics.median(known) if known else None,
        },
    }


def shown(value: float | None, digits: int) -> str:
    if value is None:
        return MISSING
    return f"{value:.{digits}f}" if digits else f"{round(value)}"


def table(summary: Mapping[str, Any], old_label: str, new_label: str) -> str:
    """The summary as the text table the tool prints."""
    old, new, ratios = summary["old"], summary["new"], summary["new_over_old"]
    rows = [
        (f"{label}, median", old["median"][key], new["median"][key], ratios["median"][key], key)
        for key, label in MEDIANS.items()
    ]
    best = (old["best_events_per_s"], new["best_events_per_s"], ratios["best_events_per_s"])
    rows.insert(1, ("events/s, best", *best, RATE))
    lines = [
        f"old = {old_label}",
        f"new = {new_label}",
        f"{'measure':<34} {'old':>10} {'new':>10} {'new/old':>8}",
    ]
    for label, a, b, r, key in rows:
        digits = 0 if key == RATE else 1
        lines.append(f"{label:<34} {shown(a, digits):>10} {shown(b, digits):>10} {shown(r, 3):>8}")
    pairs = " ".join(shown(r, 3) for r in ratios["pairwise_events_per_s"])
    median_pair = shown(ratios["pairwise_median_events_per_s"], 3)
    lines.append(f"events/s new/old per round: {pairs} (median {median_pair})")
    return "\n".join(lines)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def worktree_at(revision: str) -> Iterator[Path]:
    """A detached checkout of revision in a temporary folder, gone again however the block
    ends (an error, Ctrl-C)."""
    parent = Path(tempfile.mkdtemp(prefix="gotemp-bench-compare-"))
    tree = parent / "tree"
    try:
        git("worktree", "add", "--detach", str(tree), revision)
        yield tree
    finally:
        # Unchecked: should the removal fail half way, the prune once the folder is gone still
        # makes git forget the checkout.
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
        )
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "prune"], capture_output=True)


def run_bench(side: Side, out: Path, events: int | None) -> dict[str, float]:
    """One run of side's devtools/bench_audit in a fresh process; its JSON result."""
    bench_args = ["--seconds", "1", "--out", str(out)]
    if events is not None:
        bench_args += ["--events", str(events)]
    env = dict(os.environ)
    # The bench starts the audit service as `python -m audit.server` from its tree; this keeps
    # that process on the same tree too.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(side.tree), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, str(side.tree), "devtools.bench_audit", *bench_args],
        cwd=side.tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C reaches this tool, which then stops the bench
    )
    try:
        output, _ = proc.communicate()
    except BaseException:
        # SIGINT lets the bench stop its PostgreSQL, NATS and audit service itself.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"the {side.name} bench exited {proc.returncode}:\n{output}")
    check_imports(side, output)
    return dict(json.loads(out.read_text()))


def check_imports(side: Side, output: str) -> None:
    """Fails unless the bench's code came from side's tree."""
    paths = [
        Path(line.removeprefix(IMPORT_MARK)).resolve()
        for line in output.splitlines()
        if line.startswith(IMPORT_MARK)
    ]
    tree = side.tree.resolve()
    if len(paths) != 2 or not all(path.is_relative_to(tree) for path in paths):
        raise RuntimeError(f"the {side.name} bench did not run the code of {tree}: {paths}")


def compare(revision: str, rounds: int, events: int | None, out: Path) -> dict[str, Any]:
    """Runs both benches rounds times each, alternating; prints and writes the summary."""
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    changed = git("status", "--porcelain", "--untracked-files=no")
    new_label = (
        f"working tree ({git('rev-parse', '--short', 'HEAD')}{' + changes' if changed else ''})"
    )
    old_label = f"{revision} ({commit[:10]})"
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with (
        tempfile.TemporaryDirectory(prefix="gotemp-bench-compare-runs-") as results,
        worktree_at(commit) as old_tree,
    ):
        sides = (Side("old", old_tree), Side("new", REPO_ROOT))
        for round_ in range(rounds):
            # old-new, then new-old: a host getting slower or faster favours neither side.
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                result = run_bench(side, Path(results) / f"{side.name}-{round_}.json", events)
                runs[side.name].append(result)
                rate = shown(result.get(RATE), 0)
                print(f"round {round_ + 1}/{rounds} {side.name}: {rate} events/s", flush=True)
    summary = summarize(runs["old"], runs["new"])
    print(table(summary, old_label, new_label))
    document = {
        "revision": revision,
        "commit": commit,
        "rounds": rounds,
        "events": events,
        "old_label": old_label,
        "new_label": new_label,
        # Where the old revision was checked out (gone by now), for the record.
        "old_tree": str(old_tree),
        **summary,
        "runs": runs,
    }
    write_json(out, document)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the older revision, e.g. 336cd39")
    parser.add_argument("--rounds", type=int, default=6, help="runs per side (default 6)")
    parser.add_argument("--events", type=int, help="events per burst (the bench's default)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "compare-results.json")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # A TERM (a CI timeout, kill) unwinds like Ctrl-C, so the temporary checkout goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    compare(args.revision, args.rounds, args.events, args.out)


if __name__ == "__main__":
    main()
