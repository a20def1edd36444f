"""The customer service is exactly what `make new-service NAME=customer` makes: its unit and
integration tests run the template's code, so a template change that breaks a generated service
breaks them."""

from __future__ import annotations

from pathlib import Path

from devtools.new_service import NewService, render, tidy, write
from devtools.paths import REPO_ROOT
from devtools.suite import load_suite


def test_customer_is_the_template_rendered_for_its_name(tmp_path: Path) -> None:
    customer = load_suite().service("customer")
    files = render(NewService(customer.name, customer.port))
    write(files, tmp_path)
    tidy(list(files), tmp_path)
    assert len(files) > 20
    differing = [
        str(path)
        for path in files
        if (tmp_path / path).read_text() != (REPO_ROOT / path).read_text()
    ]
    assert differing == []


def test_every_template_is_used_and_names_no_service_of_its_own() -> None:
    folder = REPO_ROOT / "templates" / "service"
    for template in folder.rglob("*.j2"):
        text = template.read_text()
        assert "promotion" not in text and "widget" not in text, template
    rendered = render(NewService("widget", 50061))
    assert all("widget" in str(path) or path.name == "__init__.py" for path in rendered)
    assert Path("widget/proto/widget.proto") in rendered
