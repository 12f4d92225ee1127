"""``vigil-portal keys``: rotate signing keys without breaking installed engines."""

from __future__ import annotations

from typing import Annotated

import typer

from portal.cli._common import cli_actor, console, handle_errors
from portal.db import session_scope
from portal.repository import service
from portal.repository.keystore import KeyRole
from portal.settings import get_settings

app = typer.Typer(help="Signing keys.", no_args_is_help=True)


@app.command()
@handle_errors
def rotate(
    role: Annotated[
        KeyRole,
        typer.Argument(metavar="ROLE", help="The role whose key is replaced."),
    ],
) -> None:
    """Replace a role's signing key; engines follow through the signed root chain."""
    settings = get_settings()
    with session_scope() as session:
        rotation = service.rotate_key(session, settings, role, actor=cli_actor())
    console.print(
        f"rotated the {rotation.role.value} key: {rotation.old_key_id[:16]}... -> "
        f"{rotation.new_key_id[:16]}... ({rotation.new_key_path}); "
        f"root is at version {rotation.root_version}"
    )
    if role is KeyRole.ROOT:
        console.print(
            "give new adopters the new root ('vigil-portal repo root'); installed engines "
            "already trust it through the chain"
        )
