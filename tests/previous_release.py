"""The last release before versioned migrations, as test data: its init scripts
(tests/data/previous_release/) and a database built with them, as an existing volume holds it."""

from __future__ import annotations

from pathlib import Path

from devtools.stack import EmbeddedPostgres

PREVIOUS_RELEASE = Path(__file__).resolve().parent / "data" / "previous_release"
PREVIOUS_POSTGRES_INIT = PREVIOUS_RELEASE / "postgresInit"
PREVIOUS_TIMESCALE_INIT = PREVIOUS_RELEASE / "timescaleInit"


def build_previous_release(pg: EmbeddedPostgres) -> None:
    """appuser, promotion and audit as that release's init scripts made them (as the
    superuser, every service connecting as it too) on a fresh server."""
    pg.apply_init_scripts(PREVIOUS_POSTGRES_INIT)
    pg.apply_init_scripts(PREVIOUS_TIMESCALE_INIT, database="audit")
