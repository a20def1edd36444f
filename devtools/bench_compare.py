"""Audit ingest and the read paths of an older revision against the working tree
(`make bench-compare REV=...`).

One `make bench-audit` run on a small shared host swings by ±20 %, so two runs minutes apart say
nothing about a 10 % difference. This tool runs the old revision's own code (from a temporary
`git worktree`) and the working tree's alternately in the same minutes, each a fresh process,
in the order old-new, new-old, ... so a drift of the host weighs on both sides alike, and it
compares medians and bests rather than single runs. Ingest is each tree's devtools.bench_audit;
the reads (GetUserById, GetUsers, GetPromotionById through the real services) are
devtools/bench_reads.py driving each tree's own suite and load generator. CPU per call or event
(the service's own) swings much less with the host's load than rates do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from devtools.bench_reads import PROCESS_MARK
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
# The read paths, each reported by its rate and its service's CPU per call (with p99).
READ_MEASURES = {
    "calls_per_s": "calls/s",
    "cpu_us_per_call": "CPU µs/call",
    "p99_ms": "p99 ms",
}
READ_RATE = "calls_per_s"
KINDS = ("ingest", "reads")
READS_HARNESS = REPO_ROOT / "devtools" / "bench_reads.py"
# The packages whose origin each kind of run reports (and the tool checks).
CHECKED_PACKAGES = {
    "ingest": ("audit", "devtools"),
    "reads": ("user", "promotion", "global_utils", "devtools"),
}
MISSING = "–"
IMPORT_MARK = "bench_compare: imported "
# Runs a tree's module (or a script, given by its path) with that tree, and only it, importable:
# the venv's editable install points at the main checkout and would otherwise answer for every
# package the tree lacks. It tells the parent on stderr where the named packages came from,
# which the parent checks.
BOOTSTRAP = f"""\
import importlib, runpy, signal, sys
# Ctrl-C arrives forwarded as SIGINT, also when this was started with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
tree, packages, target = sys.argv[1], sys.argv[2], sys.argv[3]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, tree)
for name in packages.split(","):
    print({IMPORT_MARK!r} + importlib.import_module(name).__file__, file=sys.stderr)
sys.argv = [target, *sys.argv[4:]]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
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


def read_paths(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> list[str]:
    """The read paths the runs measured, in the order they were first met."""
    return list(dict.fromkeys(path for run in runs for path in run))


def summarize_reads(
    old: Sequence[Mapping[str, Mapping[str, float]]],
    new: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, Any]:
    """Per read path and measure: each side's median, new/old of the medians, and new/old of
    each round's pair of runs with their median (None wherever a side lacks the number)."""
    summary: dict[str, Any] = {}
    for path in read_paths([*old, *new]):
        old_runs = [run[path] for run in old if path in run]
        new_runs = [run[path] for run in new if path in run]
        medians = {
            side: {key: median_of(runs, key) for key in READ_MEASURES}
            for side, runs in (("old", old_runs), ("new", new_runs))
        }
        pairwise = {
            key: [
                ratio(n.get(path, {}).get(key), o.get(path, {}).get(key))
                for o, n in zip(old, new, strict=True)
            ]
            for key in READ_MEASURES
        }
        summary[path] = {
            **medians,
            "new_over_old": {
                key: ratio(medians["new"][key], medians["old"][key]) for key in READ_MEASURES
            },
            "pairwise": pairwise,
            "pairwise_median": {
                key: statistics.median(known)
                if (known := [r for r in ratios if r is not None])
                else None
                for key, ratios in pairwise.items()
            },
        }
    return summary


def reads_table(summary: Mapping[str, Any]) -> str:
    """The read paths' summary as text: per path and measure the medians, their ratio, and
    the ratio of each round's pair."""
    lines = [f"{'read path, median of runs':<34} {'old':>10} {'new':>10} {'new/old':>8}  per round"]
    for path, measures in summary.items():
        for key, label in READ_MEASURES.items():
            digits = 0 if key == READ_RATE else 1
            old, new = measures["old"][key], measures["new"][key]
            pairs = " ".join(shown(r, 3) for r in measures["pairwise"][key])
            lines.append(
                f"{path + ' ' + label:<34} {shown(old, digits):>10} {shown(new, digits):>10}"
                f" {shown(measures['new_over_old'][key], 3):>8}  {pairs}"
                f" (median {shown(measures['pairwise_median'][key], 3)})"
            )
    return "\n".join(lines)


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


def run_bench(
    side: Side, kind: str, out: Path, events: int | None, read_seconds: float
) -> dict[str, Any]:
    """One run of side's ingest bench (devtools.bench_audit) or read bench (bench_reads.py on
    side's suite) in a fresh process; its JSON result."""
    if kind == "ingest":
        target = "devtools.bench_audit"
        bench_args = ["--seconds", "1", "--out", str(out)]
        if events is not None:
            bench_args += ["--events", str(events)]
    else:
        target = str(READS_HARNESS)
        warmup = min(1.0, read_seconds)
        bench_args = ["--seconds", str(read_seconds), "--warmup-seconds", str(warmup)]
        bench_args += ["--out", str(out)]
    env = dict(os.environ)
    # The benches start the services as `python -m <service>.server` from the tree; this keeps
    # those processes on the same tree too.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(side.tree), env.get("PYTHONPATH")]))
    packages = ",".join(CHECKED_PACKAGES[kind])
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, str(side.tree), packages, target, *bench_args],
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
        # SIGINT lets the bench stop its PostgreSQL, NATS and services itself.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"the {side.name} {kind} bench exited {proc.returncode}:\n{output}")
    check_imports(side, output, len(CHECKED_PACKAGES[kind]))
    if kind == "reads":
        check_services(side, output)
    return dict(json.loads(out.read_text()))


def check_imports(side: Side, output: str, expected: int = 2) -> None:
    """Fails unless the bench's code (the expected number of packages) came from side's
    tree."""
    paths = [
        Path(line.removeprefix(IMPORT_MARK)).resolve()
        for line in output.splitlines()
        if line.startswith(IMPORT_MARK)
    ]
    tree = side.tree.resolve()
    if len(paths) != expected or not all(path.is_relative_to(tree) for path in paths):
        raise RuntimeError(f"the {side.name} bench did not run the code of {tree}: {paths}")


def check_services(side: Side, output: str) -> None:
    """Fails unless both read services ran from side's tree (their working directory, which
    `python -m` puts first on their path, and their PYTHONPATH)."""
    origins = [
        json.loads(line.removeprefix(PROCESS_MARK))
        for line in output.splitlines()
        if line.startswith(PROCESS_MARK)
    ]
    tree = side.tree.resolve()
    inside = [
        Path(origin["cwd"]).resolve().is_relative_to(tree)
        and Path(origin["pythonpath"]).resolve().is_relative_to(tree)
        for origin in origins
    ]
    if len(origins) != 2 or not all(inside):
        raise RuntimeError(f"the {side.name} services did not run the code of {tree}: {origins}")


def last_error(output: str) -> str:
    """The last line of output that names an exception (else its last line): what a failed
    run died of, without the noise an event loop prints after it."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^(?:[a-z_]\w*\.)*[A-Z]\w*: ", line)]
    return (named or lines or [""])[-1]


def progress(kind: str, result: Mapping[str, Any]) -> str:
    """One run's headline numbers."""
    if kind == "ingest":
        return f"{shown(result.get(RATE), 0)} events/s"
    return ", ".join(
        f"{path} {shown(row.get(READ_RATE), 0)}/s {shown(row.get('cpu_us_per_call'), 0)} µs"
        for path, row in result.items()
    )


def compare(
    revision: str,
    rounds: int,
    events: int | None,
    out: Path,
    kinds: Sequence[str] = KINDS,
    read_seconds: float = 5.0,
) -> dict[str, Any]:
    """Runs both sides' benches of each kind rounds times, alternating; prints and writes the
    summary."""
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    changed = git("status", "--porcelain", "--untracked-files=no")
    new_label = (
        f"working tree ({git('rev-parse', '--short', 'HEAD')}{' + changes' if changed else ''})"
    )
    old_label = f"{revision} ({commit[:10]})"
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        kind: {"old": [], "new": []} for kind in kinds
    }
    failed: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="gotemp-bench-compare-runs-") as results,
        worktree_at(commit) as old_tree,
    ):
        sides = (Side("old", old_tree), Side("new", REPO_ROOT))
        for round_ in range(rounds):
            # old-new, then new-old: a host getting slower or faster favours neither side.
            for kind in kinds:
                for side in sides if round_ % 2 == 0 else sides[::-1]:
                    out_file = Path(results) / f"{kind}-{side.name}-{round_}.json"
                    try:
                        result = run_bench(side, kind, out_file, events, read_seconds)
                    except RuntimeError as error:
                        # A shared machine sometimes loses a run (a server killed, a port
                        # taken): it is said, recorded and run once more, fresh; twice is real.
                        last = last_error(str(error))
                        where = {"round": round_ + 1, "kind": kind, "side": side.name}
                        print(f"{where} failed, running it again: {last}", flush=True)
                        failed.append({**where, "error": last})
                        result = run_bench(side, kind, out_file, events, read_seconds)
                    runs[kind][side.name].append(result)
                    print(
                        f"round {round_ + 1}/{rounds} {kind} {side.name}: {progress(kind, result)}",
                        flush=True,
                    )
    document: dict[str, Any] = {
        "revision": revision,
        "commit": commit,
        "rounds": rounds,
        "events": events,
        "read_seconds": read_seconds,
        "old_label": old_label,
        "new_label": new_label,
        # Where the old revision was checked out (gone by now), for the record.
        "old_tree": str(old_tree),
        # runs that failed once and were run again (their retry is in the runs)
        "failed_runs": failed,
    }
    if "ingest" in runs:
        summary = summarize(runs["ingest"]["old"], runs["ingest"]["new"])
        print(table(summary, old_label, new_label))
        document |= {**summary, "runs": runs["ingest"]}
    if "reads" in runs:
        reads = summarize_reads(runs["reads"]["old"], runs["reads"]["new"])
        if "ingest" not in runs:  # its table names the sides
            print(f"old = {old_label}\nnew = {new_label}")
        print(reads_table(reads))
        document |= {"reads": reads, "read_runs": runs["reads"]}
    write_json(out, document)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the older revision, e.g. 336cd39")
    parser.add_argument("--rounds", type=int, default=6, help="runs per side (default 6)")
    parser.add_argument("--events", type=int, help="events per burst (the bench's default)")
    parser.add_argument(
        "--only", choices=KINDS, help="compare only audit ingest or only the read paths"
    )
    parser.add_argument(
        "--read-seconds", type=float, default=5.0, help="load per read path and run (default 5)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "compare-results.json")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # A TERM (a CI timeout, kill) unwinds like Ctrl-C, so the temporary checkout goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = (args.only,) if args.only else KINDS
    compare(args.revision, args.rounds, args.events, args.out, kinds, args.read_seconds)


if __name__ == "__main__":
    main()
