"""The bench comparison: medians, bests and new/old ratios of alternated runs; the import check."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.bench_compare import IMPORT_MARK, MISSING, Side, check_imports, summarize, table


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
