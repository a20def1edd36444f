"""make new-service: which names it refuses, which port it takes, and that a refusal changes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.new_service import NewService, Refused, check_name, create, next_port, suite_entry
from devtools.paths import REPO_ROOT
from devtools.suite import parse_suite

SUITE_TEXT = (REPO_ROOT / "suite.toml").read_text()


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
    suite = check_name("widget", SUITE_TEXT, REPO_ROOT)
    widget = suite.service("widget")
    taken = {s.port for s in suite.services if s.name != "widget"}
    assert widget.port >= 50061 and widget.port % 2 == 1 and widget.port not in taken
    assert (widget.grpc_service, widget.database, widget.calls) == (
        "widget.WidgetSrv",
        "widget",
        ("user",),
    )
    busy = parse_suite(SUITE_TEXT + suite_entry(NewService("gadget", 50061)))
    assert next_port(busy) == 50063


def test_a_refused_name_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "suite.toml").write_text(SUITE_TEXT)
    (tmp_path / "user").mkdir()
    for name in ("user", "Bad Name"):
        with pytest.raises(Refused):
            create(name, tmp_path)
    assert (tmp_path / "suite.toml").read_text() == SUITE_TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml", "user"]
