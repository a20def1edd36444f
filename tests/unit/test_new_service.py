"""make new-service: which names it refuses, which port it takes, and that a refusal changes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.new_service import NewService, Refused, check_name, create, next_port, suite_entry
from devtools.paths import REPO_ROOT
from devtools.suite import parse_suite
from tests.helpers import spare_names

SUITE_TEXT = (REPO_ROOT / "suite.toml").read_text()
# a name this repository has not used yet (a grown copy may already have a widget)
(FRESH,) = spare_names("widget")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Widget", "lowercase"),
        ("1widget", "lowercase"),
        ("wid-get", "lowercase"),
        ("wid_get", "lowercase"),
        ("class", "keyword"),
        ("user", "already in suite.toml"),
        ("tests", "taken in the repository"),
        ("gateway", "taken in the repository"),
        ("json", "standard library"),
        ("admin", "taken by the repository"),
    ],
)
def test_refused_names_say_why(name: str, why: str) -> None:
    with pytest.raises(Refused) as refused:
        check_name(name, SUITE_TEXT, REPO_ROOT)
    assert why in str(refused.value)


def test_a_new_service_takes_the_next_free_odd_port_from_50061() -> None:
    suite = check_name(FRESH, SUITE_TEXT, REPO_ROOT)
    fresh = suite.service(FRESH)
    taken = {s.port for s in suite.services if s.name != FRESH}
    assert fresh.port >= 50061 and fresh.port % 2 == 1 and fresh.port not in taken
    assert (fresh.grpc_service, fresh.database, fresh.calls) == (
        f"{FRESH}.{FRESH.capitalize()}Srv",
        FRESH,
        ("user",),
    )
    base = parse_suite(SUITE_TEXT)
    busy = parse_suite(SUITE_TEXT + suite_entry(NewService(FRESH, next_port(base))))
    assert next_port(busy) == next_port(base) + 2


def test_a_refused_name_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "suite.toml").write_text(SUITE_TEXT)
    (tmp_path / "user").mkdir()
    for name in ("user", "Bad Name"):
        with pytest.raises(Refused):
            create(name, tmp_path)
    assert (tmp_path / "suite.toml").read_text() == SUITE_TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml", "user"]
