"""Search parameters become $n placeholders; values never reach the SQL text."""

from __future__ import annotations

from datetime import UTC, datetime

from user.server.models import UserQuery
from user.server.repository import build_search


def test_no_filters_selects_everything_up_to_the_limit() -> None:
    sql, args = build_search(UserQuery(limit=200))
    assert "WHERE" not in sql
    assert sql.endswith("ORDER BY id LIMIT $1")
    assert args == [201]


def test_each_filter_adds_one_parameter_in_order() -> None:
    day = datetime(2024, 5, 1, tzinfo=UTC)
    query = UserQuery(
        id=5, firstname="A", lastname="B", email="E@x.com", company="C", valid_date=day, limit=10
    )
    sql, args = build_search(query)
    assert args == [5, "A", "B", "E@x.com", "C", day, 11]
    where = sql.split("WHERE", 1)[1]
    for clause in (
        "id = $1",
        "firstname = $2",
        "lastname = $3",
        "lower(email) = lower($4)",
        "company = $5",
        "validfrom <= $6",
        "validthru >= $6",
    ):
        assert clause in where
    assert sql.endswith("LIMIT $7")


def test_hostile_values_stay_out_of_the_sql() -> None:
    evil = "x'; DROP TABLE appuser; --"
    sql, args = build_search(UserQuery(firstname=evil, company=evil))
    assert evil not in sql and "DROP" not in sql
    assert args[:2] == [evil, evil]


def test_paging_continues_after_the_last_id() -> None:
    sql, args = build_search(UserQuery(company="C", after_id=99, limit=2))
    assert "id > $2" in sql and args == ["C", 99, 3]
