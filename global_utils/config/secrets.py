"""Secret settings: a value given directly or as a file (`<VARIABLE>_FILE`, Docker and
Kubernetes secrets), and the seed line of an nkey seed file."""

from __future__ import annotations

from pathlib import Path


def read_secret(variable: str, value: str, path: Path | None) -> str:
    """A secret setting given directly or as a file (`<variable>_FILE`, which wins)."""
    if path is None:
        return value
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from None


def nkey_seed(text: str) -> str:
    """The seed of an nkey seed file's text: its first line that is not a # comment."""
    lines = (line.strip() for line in text.splitlines())
    return next((line for line in lines if line and not line.startswith("#")), "")
