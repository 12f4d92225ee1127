"""``vigil-engine``: one typer app, one module per command group."""

from __future__ import annotations

import logging
import os

import typer

from scoring_engine.cli import outbox, report, review, scoring, setup, updates
from scoring_engine.cli.common import err_console
from scoring_engine.errors import ExitCode

app = typer.Typer(
    name="vigil-engine",
    help="Vigil scoring engine: rate chat conversations for signs of grooming.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
setup.register(app)
updates.register(app)
scoring.register(app)
report.register(app)
review.register(app)
outbox.register(app)

# The commands print licensing warnings themselves (loudly, once); without this the
# library's log records would reach stderr a second time through logging's last resort.
logging.getLogger("licensing").addHandler(logging.NullHandler())
# Likewise urllib3's retry notices: a portal that cannot be reached is one error line.
logging.getLogger("urllib3").addHandler(logging.NullHandler())


def main() -> None:
    try:
        app()
    except Exception as error:
        # One line rather than a traceback (VIGIL_DEBUG=1 shows it), exit 1 (SPEC §6).
        if os.environ.get("VIGIL_DEBUG"):
            raise
        err_console.print(
            f"[bold red]error:[/] unexpected {type(error).__name__}: {error}", soft_wrap=True
        )
        raise SystemExit(ExitCode.UNEXPECTED) from None
