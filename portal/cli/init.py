"""``vigil-portal init``: the database schema, signing keys, update repository
and the first administrator.

Idempotent: a second run creates only what is missing and lists what exists;
it never replaces a key, a repository or an administrator.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from portal.cli._common import cli_actor, console, handle_errors, warn
from portal.cli.admin import PasswordStdin, create_and_print
from portal.db import display_url, session_scope, upgrade_database
from portal.repository.keystore import KeyRole
from portal.repository.service import initialise_portal
from portal.settings import get_settings


@handle_errors
def init(
    admin_email: Annotated[
        str | None,
        typer.Option(
            "--admin-email",
            help="Administrator to create, as 'vigil-portal admin create' does "
            "(password from --password-stdin, a prompt, or generated and printed once).",
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create the database schema, the signing keys, the TUF repository and an administrator."""
    settings = get_settings()
    upgrade_database()
    with session_scope() as session:
        report = initialise_portal(session, settings, actor=cli_actor())

    table = Table(title=f"Vigil portal in {settings.portal_home}")
    table.add_column("part")
    table.add_column("state")
    table.add_column("where")
    table.add_row("database schema", "up to date", display_url(settings.database_url))
    for role in KeyRole:
        state = "created" if role in report.created_keys else "exists"
        table.add_row(f"{role.value} key", state, str(settings.keys_dir / role.value))
    table.add_row(
        "update repository",
        "created" if report.repository_created else "exists",
        f"{settings.repository_dir} (root version {report.root_version})",
    )
    table.add_row(
        "license keys target",
        "published" if report.license_keys_published else "up to date",
        "licensing/keys.json",
    )
    console.print(table)
    if report.created_keys and not report.keys_encrypted:
        warn(
            "signing keys were written WITHOUT encryption (development only); "
            "set VIGIL_KEY_PASSPHRASE to encrypt them"
        )
    if admin_email and not create_and_print(admin_email, password_stdin=password_stdin):
        console.print(f"administrator {admin_email} exists")
