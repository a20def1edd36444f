"""Where the repository is, for tools run from anywhere."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
