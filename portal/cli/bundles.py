"""``vigil-portal bundles``: publish models as signed bundles and export them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from portal.bundles import service
from portal.bundles.models import Channel
from portal.cli._common import cli_actor, console, handle_errors
from portal.db import session_scope
from portal.errors import InvalidInputError
from portal.repository.service import open_repository
from portal.settings import get_settings

app = typer.Typer(help="Publish, list and export model bundles.", no_args_is_help=True)


@app.command()
@handle_errors
def publish(
    model_dir: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Model directory from 'vigil-portal models train' "
            "(model.skops, manifest.json, MODEL_CARD.md).",
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", help="Bundle version, e.g. 2026.11.0.", show_default=False)
    ],
    channel: Annotated[Channel, typer.Option("--channel", help="Update channel.")] = Channel.STABLE,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Bundle name (default: the model manifest's name)."),
    ] = None,
) -> None:
    """Sign and publish a model as a bundle in the update repository."""
    settings = get_settings()
    repository = open_repository(settings)
    with session_scope() as session:
        bundle = service.publish_bundle(
            session,
            repository,
            model_dir,
            version=version,
            channel=channel,
            name=name,
            actor=cli_actor(),
        )
    console.print(
        f"published {bundle.label} on {bundle.channel.value}: {bundle.target_path} "
        f"({bundle.length:,} bytes, sha256 {bundle.sha256})"
    )


@app.command()
@handle_errors
def export(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="A published bundle version.")],
    out: Annotated[Path, typer.Option("--out", help="Export file to write.", show_default=False)],
) -> None:
    """Write a self-contained bundle file for 'vigil-engine install'."""
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out.parent} is not a directory")
    settings = get_settings()
    repository = open_repository(settings)
    with session_scope() as session:
        bundle = service.export_bundle(session, repository, version, out, actor=cli_actor())
    console.print(
        f"exported {bundle.label} to {out}; its metadata verifies for "
        f"{settings.timestamp_expiry_days} day(s)"
    )


@app.command("list")
@handle_errors
def list_() -> None:
    """List published bundles, newest first."""
    with session_scope() as session:
        bundles = service.list_bundles(session)
        rows = [
            (b.label, b.channel.value, b.published_at.isoformat()[:16], b.published_by)
            for b in bundles
        ]
    table = Table("bundle", "channel", "published", "by")
    for row in rows:
        table.add_row(*row)
    console.print(table)
