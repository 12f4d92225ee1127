"""``vigil-portal``: one typer app, one module per command group."""

from __future__ import annotations

import typer

from portal.cli import admin, bundles, db, init, keys, licenses, models, repo, serve, usage

app = typer.Typer(
    name="vigil-portal",
    help="Vigil portal: train and publish models, license vetted organisations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("init")(init.init)
app.command("serve")(serve.serve)
app.add_typer(admin.app, name="admin")
app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(bundles.app, name="bundles")
app.add_typer(repo.app, name="repo")
app.add_typer(licenses.app, name="licenses")
app.add_typer(keys.app, name="keys")
app.add_typer(usage.app, name="usage")


def main() -> None:
    app()
