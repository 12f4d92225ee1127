"""``vigil-portal db``: the database schema."""

from __future__ import annotations

import typer

from portal.cli._common import console, handle_errors
from portal.db import current_revision, display_url, upgrade_database
from portal.settings import get_settings

app = typer.Typer(help="Manage the portal database.", no_args_is_help=True)


@app.command()
@handle_errors
def upgrade() -> None:
    """Upgrade the database schema to the newest revision (alembic upgrade head)."""
    settings = get_settings()
    upgrade_database()
    console.print(
        f"database {display_url(settings.database_url)} is at revision {current_revision()}"
    )
