"""``vigil-portal repo``: the update repository's trusted root and timestamp."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portal.cli._common import console, handle_errors
from portal.errors import InvalidInputError
from portal.repository import service
from portal.settings import get_settings

app = typer.Typer(help="The TUF update repository.", no_args_is_help=True)


@app.command()
@handle_errors
def root(
    out: Annotated[
        Path, typer.Option("--out", help="File to write root.json to.", show_default=False)
    ],
) -> None:
    """Write the current trusted root metadata, for 'vigil-engine init --root'."""
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out.parent} is not a directory")
    version = service.write_root(get_settings(), out)
    console.print(f"wrote root metadata version {version} to {out}")


@app.command()
@handle_errors
def refresh() -> None:
    """Re-sign the timestamp (and snapshot/targets close to expiry); run on a schedule."""
    resigned = service.refresh_timestamp(get_settings())
    console.print(f"re-signed {', '.join(resigned)}")
