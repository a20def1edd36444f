"""The bench comparison: medians, bests and new/old ratios of alternated runs (ingest and the
read paths); the checks that each side ran its own tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.bench_compare import (
    IMPORT_MARK,
    MISSING,
    Side,
    check_imports,
    check_services,
    last_error,
    reads_table,
    summarize,
    summarize_reads,
    table,
)
from devtools.bench_reads import PROCESS_MARK


def run(rate: float, audit_cpu: float, **more: float) -> dict[str, float]:
    return {
        "ingest_events_per_s": rate,
        "audit_cpu_us_per_event": audit_cpu,
        "nats_cpu_us_per_event": 4.0,
        "postgres_cpu_us_per_event": 6.0,
        **more,
    }


OLD = [run(30_000, 10.0, lag_p99_ms=8.0), run(40_000, 12.0, lag_p99_ms=9.0), run(26_000, 11.0)]
NEW = [run(27_000, 14.0), run(44_000, 13.0), run(26_000, 15.0)]


def test_medians_and_bests_per_side() -> None:
    summary = summarize(OLD, NEW)
    assert summary["old"]["median"]["ingest_events_per_s"] == 30_000
    assert summary["new"]["median"]["ingest_events_per_s"] == 27_000
    assert summary["old"]["best_events_per_s"] == 40_000
    assert summary["new"]["best_events_per_s"] == 44_000
    assert summary["new"]["median"]["audit_cpu_us_per_event"] == 14.0


def test_ratios_are_new_over_old() -> None:
    ratios = summarize(OLD, NEW)["new_over_old"]
    assert ratios["median"]["ingest_events_per_s"] == pytest.approx(0.9)
    assert ratios["best_events_per_s"] == pytest.approx(1.1)
    assert ratios["median"]["audit_cpu_us_per_event"] == pytest.approx(14.0 / 11.0)
    assert ratios["pairwise_events_per_s"] == pytest.approx([0.9, 1.1, 1.0])
    assert ratios["pairwise_median_events_per_s"] == pytest.approx(1.0)


def test_a_number_some_runs_lack_is_the_median_of_those_that_have_it() -> None:
    summary = summarize(OLD, NEW)
    assert summary["old"]["median"]["lag_p99_ms"] == pytest.approx(8.5)


def test_a_number_one_side_lacks_is_none_and_shown_as_a_dash() -> None:
    summary = summarize(OLD, NEW)
    assert summary["new"]["median"]["lag_p99_ms"] is None
    assert summary["new_over_old"]["median"]["lag_p99_ms"] is None
    lag_row = next(
        line for line in table(summary, "old", "new").splitlines() if line.startswith("change")
    )
    assert lag_row.split()[-3:] == ["8.5", MISSING, MISSING]


def test_runs_without_a_rate_give_no_rate_ratios() -> None:
    old = [{"audit_cpu_us_per_event": 10.0}]
    new = [run(30_000, 12.0)]
    summary = summarize(old, new)
    assert summary["old"]["best_events_per_s"] is None
    assert summary["new_over_old"]["best_events_per_s"] is None
    assert summary["new_over_old"]["pairwise_events_per_s"] == [None]
    assert summary["new_over_old"]["pairwise_median_events_per_s"] is None
    assert summary["new_over_old"]["median"]["audit_cpu_us_per_event"] == pytest.approx(1.2)


def test_the_table_shows_every_measure_with_its_ratio() -> None:
    text = table(summarize(OLD, NEW), "336cd39", "working tree")
    rows = {line.rsplit(maxsplit=3)[0]: line.split()[-3:] for line in text.splitlines()[3:-1]}
    assert rows["events/s, median"] == ["30000", "27000", "0.900"]
    assert rows["events/s, best"] == ["40000", "44000", "1.100"]
    assert rows["CPU µs/event: NATS, median"] == ["4.0", "4.0", "1.000"]
    assert text.splitlines()[-1] == "events/s new/old per round: 0.900 1.100 1.000 (median 1.000)"


def test_a_bench_that_imported_another_tree_fails_loudly(tmp_path: Path) -> None:
    side = Side("old", tmp_path / "old")
    elsewhere = "\n".join(
        f"{IMPORT_MARK}{tmp_path}/main/{package}/__init__.py" for package in ("audit", "devtools")
    )
    with pytest.raises(RuntimeError, match="did not run the code of"):
        check_imports(side, elsewhere)


def test_a_bench_that_imported_its_tree_passes(tmp_path: Path) -> None:
    side = Side("old", tmp_path / "old")
    own = "\n".join(
        f"{IMPORT_MARK}{tmp_path}/old/{package}/__init__.py" for package in ("audit", "devtools")
    )
    check_imports(side, f"some output\n{own}\nmore output")


def read_run(**paths: tuple[float, float]) -> dict[str, dict[str, float]]:
    """A read bench's result: per path (calls/s, CPU µs per call); p99 fixed."""
    return {
        path: {"calls_per_s": rate, "cpu_us_per_call": cpu, "p99_ms": 10.0}
        for path, (rate, cpu) in paths.items()
    }


OLD_READS = [
    read_run(GetUserById=(1000, 400), GetPromotionById=(800, 500)),
    read_run(GetUserById=(1200, 380), GetPromotionById=(900, 520)),
    read_run(GetUserById=(900, 420), GetPromotionById=(700, 480)),
]
NEW_READS = [
    read_run(GetUserById=(1100, 360), GetPromotionById=(800, 500)),
    read_run(GetUserById=(1200, 380), GetPromotionById=(990, 468)),
    read_run(GetUserById=(810, 400), GetPromotionById=(700, 480)),
]


def test_reads_are_summarized_per_path_by_medians_and_their_ratio() -> None:
    summary = summarize_reads(OLD_READS, NEW_READS)
    assert list(summary) == ["GetUserById", "GetPromotionById"]
    by_id = summary["GetUserById"]
    assert by_id["old"]["calls_per_s"] == 1000
    assert by_id["new"]["calls_per_s"] == 1100
    assert by_id["new_over_old"]["calls_per_s"] == pytest.approx(1.1)
    assert by_id["old"]["cpu_us_per_call"] == 400
    assert by_id["new"]["cpu_us_per_call"] == 380
    assert by_id["new_over_old"]["cpu_us_per_call"] == pytest.approx(0.95)


def test_reads_ratios_per_round_pair_each_old_run_with_the_new_run_of_its_round() -> None:
    promo = summarize_reads(OLD_READS, NEW_READS)["GetPromotionById"]
    assert promo["pairwise"]["calls_per_s"] == pytest.approx([1.0, 1.1, 1.0])
    assert promo["pairwise"]["cpu_us_per_call"] == pytest.approx([1.0, 0.9, 1.0])
    assert promo["pairwise_median"]["calls_per_s"] == pytest.approx(1.0)
    by_id = summarize_reads(OLD_READS, NEW_READS)["GetUserById"]
    assert by_id["pairwise"]["calls_per_s"] == pytest.approx([1.1, 1.0, 0.9])


def test_a_read_path_one_side_lacks_has_no_ratios() -> None:
    old = [read_run(GetUserById=(1000, 400), GetUsers=(500, 700))]
    new = [read_run(GetUserById=(1000, 400))]
    users = summarize_reads(old, new)["GetUsers"]
    assert users["new"]["calls_per_s"] is None
    assert users["new_over_old"]["calls_per_s"] is None
    assert users["pairwise"]["calls_per_s"] == [None]
    assert users["pairwise_median"]["calls_per_s"] is None
    row = next(
        line
        for line in reads_table(summarize_reads(old, new)).splitlines()
        if line.startswith("GetUsers calls/s")
    )
    assert row.split()[2:5] == ["500", MISSING, MISSING]


def test_the_reads_table_shows_each_path_and_measure_with_rounds() -> None:
    lines = reads_table(summarize_reads(OLD_READS, NEW_READS)).splitlines()
    rate = next(line for line in lines if line.startswith("GetUserById calls/s"))
    assert rate.split()[2:5] == ["1000", "1100", "1.100"]
    assert rate.endswith("1.100 1.000 0.900 (median 1.000)")
    cpu = next(line for line in lines if line.startswith("GetPromotionById CPU µs/call"))
    assert cpu.split()[3:6] == ["500.0", "480.0", "0.960"]


def origin_line(cwd: Path, pythonpath: Path) -> str:
    return PROCESS_MARK + json.dumps({"cwd": str(cwd), "pythonpath": str(pythonpath)})


def test_read_services_that_ran_another_tree_fail_loudly(tmp_path: Path) -> None:
    side = Side("old", tmp_path / "old")
    output = "\n".join(
        [
            origin_line(tmp_path / "old", tmp_path / "old"),
            origin_line(tmp_path / "main", tmp_path / "old"),
        ]
    )
    with pytest.raises(RuntimeError, match="services did not run the code of"):
        check_services(side, output)


def test_read_services_of_their_own_tree_pass(tmp_path: Path) -> None:
    side = Side("new", tmp_path / "new")
    line = origin_line(tmp_path / "new", tmp_path / "new")
    check_services(side, f"starting\n{line}\n{line}\ndone")


def test_a_read_bench_that_imported_fewer_packages_than_it_names_fails(tmp_path: Path) -> None:
    side = Side("new", tmp_path / "new")
    own = f"{IMPORT_MARK}{tmp_path}/new/user/__init__.py"
    with pytest.raises(RuntimeError, match="did not run the code of"):
        check_imports(side, own, expected=4)


def test_a_failed_run_is_named_by_its_last_exception_not_the_loops_noise() -> None:
    output = "\n".join(
        [
            "the old ingest bench exited 1:",
            "Traceback (most recent call last):",
            "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 47871)",
            "global_errors.errors.Unavailable: database unavailable",
            "asyncpg.exceptions.TooManyConnectionsError: sorry, too many clients",
            "Task was destroyed but it is pending!",
            "task: <Task pending name='Task-1876' coro=<Pool._maintain_min_size()>>",
        ]
    )
    assert (
        last_error(output) == "asyncpg.exceptions.TooManyConnectionsError: sorry, too many clients"
    )
    assert last_error("just one line\n") == "just one line"
