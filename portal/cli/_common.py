"""What the portal's persistence and licensing commands share: the acting
operator's name for the audit trail, and the one mapping from errors to one
line on stderr plus the SPEC §6 exit code.
"""

from __future__ import annotations

import functools
import getpass
from typing import TYPE_CHECKING, Final, NoReturn, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from licensing.exceptions import LicensingError
from portal.errors import PortalError

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
R = TypeVar("R")

EXIT_UNEXPECTED: Final = 1

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> NoReturn:
    """One clear line on stderr (as ``vigil-engine`` writes it), then exit ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}")


def cli_actor() -> str:
    """``cli:<operating-system user>``, the actor of events made on the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def _database_hint(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if isinstance(error, (OperationalError, ProgrammingError)) and (
        "no such table" in text or "does not exist" in text
    ):
        return f"database error: {first_line} (run 'vigil-portal db upgrade')"
    return f"database error: {first_line}"


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``, turning any error into one stderr line and an exit code:
    the domain's own code for portal and licensing errors, 1 for the unexpected.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        # typer 0.29's Exit is its own class, not click's: both pass through untouched.
        except (typer.Exit, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (PortalError, LicensingError) as error:
            fail(str(error), error.exit_code)
        except SQLAlchemyError as error:
            fail(_database_hint(error), EXIT_UNEXPECTED)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            fail(f"{error.strerror or error}{where}", EXIT_UNEXPECTED)
        except Exception as error:
            fail(f"unexpected {type(error).__name__}: {error}", EXIT_UNEXPECTED)

    return wrapper
