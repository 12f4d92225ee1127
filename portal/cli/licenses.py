"""``vigil-portal licenses``: issue and revoke licenses outside the application flow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from portal.bundles.models import Channel
from portal.cli._common import cli_actor, console, handle_errors
from portal.db import session_scope
from portal.errors import InvalidInputError
from portal.licenses import service
from portal.organisations.service import get_or_create_organisation
from portal.repository.service import license_signing_key, open_repository
from portal.settings import get_settings

app = typer.Typer(help="Issue, list and revoke licenses.", no_args_is_help=True)


def _write_new_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner can read (a token is a credential)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


@app.command()
@handle_errors
def issue(
    org: Annotated[
        str, typer.Option("--org", help="Organisation name (created if new).", show_default=False)
    ],
    days: Annotated[
        int,
        typer.Option("--days", min=1, help="Days until the license expires.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="File to write the license token to (must not exist).", show_default=False
        ),
    ],
    channel: Annotated[
        list[Channel] | None,
        typer.Option("--channel", help="Update channel the license may pull (repeatable)."),
    ] = None,
    max_engines: Annotated[
        int, typer.Option("--max-engines", min=1, help="Engines that may run on the license.")
    ] = 1,
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="Engine feature to enable (repeatable).")
    ] = None,
) -> None:
    """Issue a license and write its token to FILE; print the license id."""
    settings = get_settings()
    if out.exists():
        raise InvalidInputError(f"{out} exists; the token is written to a new file only")
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out.parent} is not a directory")
    signing_key = license_signing_key(settings)
    actor = cli_actor()
    written = False
    try:
        with session_scope() as session:
            organisation = get_or_create_organisation(session, org, actor=actor)
            issued = service.issue_license(
                session,
                organisation,
                days=days,
                channels=[item.value for item in channel or [Channel.STABLE]],
                max_engines=max_engines,
                features=feature or [],
                signing_key=signing_key.key,
                issuer=settings.portal_url,
                actor=actor,
            )
            _write_new_secret_file(out, issued.token + "\n")
            written = True
    except BaseException:
        # A token must never exist for a license the database does not know
        # (it could not be listed or revoked).
        if written:
            out.unlink(missing_ok=True)
        raise
    license_ = issued.license
    print(license_.id)
    typer.echo(
        f"issued to {organisation.name}, channels {', '.join(license_.channels)}, "
        f"{license_.max_engines} engine(s), expires {license_.expires_at:%Y-%m-%d %H:%M}Z; "
        f"token in {out}",
        err=True,
    )


@app.command()
@handle_errors
def revoke(
    license_id: Annotated[str, typer.Argument(metavar="LICENSE_ID", help="The license to revoke.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Why (published on the revocation list).", show_default=False
        ),
    ],
) -> None:
    """Revoke a license and publish the revocation list; engines stop at their next check."""
    settings = get_settings()
    parsed = service.parse_license_id(license_id)
    repository = open_repository(settings)
    with session_scope() as session:
        license_ = service.revoke_license(
            session, parsed, reason=reason, repository=repository, actor=cli_actor()
        )
        organisation = license_.organisation.name
    console.print(
        f"revoked license {license_.id} of {organisation}; revocation list "
        f"version {repository.revocations().version} published"
    )


@app.command("list")
@handle_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per license.")] = False,
) -> None:
    """List licenses, newest first."""
    with session_scope() as session:
        licenses = service.list_licenses(session)
        rows = [
            {
                "id": str(item.id),
                "organisation": item.organisation.name,
                "status": item.status.value,
                "channels": list(item.channels),
                "max_engines": item.max_engines,
                "expires_at": item.expires_at.isoformat(),
            }
            for item in licenses
        ]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        "organisation",
        "status",
        "channels",
        "engines",
        "expires",
    )
    for row in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
    console.print(table)
