"""The documentation: a short README that reaches every page in docs/, and no link, file path
or module in any Markdown file of the repository that points at nothing."""

from __future__ import annotations

import os
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Pages linked before they land (none now: docs/configuration.md, generated from the settings
# classes, has landed). test_pending_pages_are_still_missing fails as soon as one exists, so it
# leaves this set with the change that adds it.
PENDING_PAGES: set[Path] = set()
# Folders that hold no documentation of ours (tools' output, caches, local data).
SKIPPED_DIRS = {"node_modules", "__pycache__", "bench"}

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
MODULE_RUN = re.compile(r"python3? -m ([A-Za-z_][\w.]*)")
# What a file path in backticks looks like: a folder ending in "/", or a name with an extension.
# Placeholders, globs of URLs, subjects and commands (spaces, <>, :, $ ...) are not paths.
NOT_A_PATH = re.compile(r"[\s<>:$={}|,()\"'\\]")
FILE_WITH_EXTENSION = re.compile(r"[^/]+\.[A-Za-z0-9]+$")


def markdown_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".") and d not in SKIPPED_DIRS and not d.endswith(".egg-info")
        ]
        found += [Path(folder) / name for name in files if name.endswith(".md")]
    return sorted(found)


def prose(path: Path) -> str:
    """The file's text without its fenced code blocks (their contents are examples, not links)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(prose(path)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


MARKDOWN = markdown_files()


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 250, f"README.md has {lines} lines; move detail into docs/"


def test_every_page_in_docs_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.split("#")[0]).resolve() for target in relative_links(README)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [page.name for page in pages if page.resolve() not in linked]
    assert not missing, f"README.md links to no {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if linked in PENDING_PAGES:
            continue
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_pending_pages_are_still_missing() -> None:
    landed = [str(page.relative_to(ROOT)) for page in PENDING_PAGES if page.exists()]
    assert not landed, f"{landed} exist now: remove them from PENDING_PAGES in {__name__}"


def cited_paths(path: Path) -> list[str]:
    return [
        code
        for code in INLINE_CODE.findall(prose(path))
        if "/" in code
        and not code.startswith(("/", "./", "../"))
        and not NOT_A_PATH.search(code)
        and (code.endswith("/") or FILE_WITH_EXTENSION.search(code))
    ]


def ignored(cited: str) -> bool:
    """Whether git ignores cited: the output of a run (bench/results.json), not the
    repository's, whether or not a run has written it here."""
    return subprocess.run(["git", "check-ignore", "-q", cited], cwd=ROOT).returncode == 0


def exists(base: Path, cited: str) -> bool:
    if "*" in cited:
        return any(base.glob(cited.rstrip("/")))
    return (base / cited).exists()


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_in_backticks_exists(path: Path) -> None:
    """A path counts as the repository's when its first folder exists at the root or beside the
    Markdown file and git does not ignore it (`bench/results.json`, written by a run, is not
    one)."""
    missing = []
    for cited in cited_paths(path):
        first = cited.split("/")[0]
        bases = [base for base in (ROOT, path.parent) if (base / first).exists()]
        if bases and not any(exists(base, cited) for base in bases) and not ignored(cited):
            missing.append(cited)
    assert not missing, f"{path.relative_to(ROOT)} cites paths that do not exist: {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_run_with_python_m_exists(path: Path) -> None:
    missing = []
    for module in MODULE_RUN.findall(path.read_text(encoding="utf-8")):
        parts = module.split(".")
        if not (ROOT / parts[0]).is_dir():
            continue  # a tool's module (pip, venv), not ours
        target = ROOT.joinpath(*parts)
        if not (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()):
            missing.append(module)
    assert not missing, f"{path.relative_to(ROOT)} runs modules that do not exist: {missing}"


def test_the_path_check_catches_a_path_that_is_gone(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "See `global_utils/no_such_module.py`, `provision/versions/` and `bench/results.json`,\n"
        "not `python -m provision` nor `.venv/bin/grpcurl`.\n"
        "```sh\ncat `global_utils/inside_a_fence.py`\n```\n",
        encoding="utf-8",
    )
    assert cited_paths(page) == [
        "global_utils/no_such_module.py",
        "provision/versions/",
        "bench/results.json",
    ]
    assert not exists(ROOT, "global_utils/no_such_module.py")
    assert exists(ROOT, "provision/versions/")


def test_slugs_are_githubs() -> None:
    assert slug("How the audit pipeline loses nothing and stores nothing twice") == (
        "how-the-audit-pipeline-loses-nothing-and-stores-nothing-twice"
    )
    assert slug("Where the security work's cost went, and what won it back") == (
        "where-the-security-works-cost-went-and-what-won-it-back"
    )
    assert slug("The broker: accounts, users and permissions") == (
        "the-broker-accounts-users-and-permissions"
    )
