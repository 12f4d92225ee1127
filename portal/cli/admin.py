"""``vigil-portal admin``: administrators of the web portal.

A password comes from standard input with ``--password-stdin`` (one line), else
from a hidden prompt when a person is at the terminal, else it is generated
and printed once. The TOTP enrolment URI is printed once, never stored in
clear anywhere but the database.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from portal.admin.credentials import generate_password
from portal.admin.service import create_admin, get_admin_by_email
from portal.cli._common import cli_actor, console, handle_errors
from portal.db import session_scope
from portal.errors import InvalidInputError

app = typer.Typer(help="Administrators of the web portal.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def obtain_password(*, from_stdin: bool) -> tuple[str, bool]:
    """The new administrator's password, and whether it was generated here."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInputError("--password-stdin: standard input has no password")
        return password, False
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password, False
    return generate_password(), True


def create_and_print(email: str, *, password_stdin: bool) -> bool:
    """Create administrator ``email`` and print its enrolment URI (False if it exists)."""
    with session_scope() as session:
        if get_admin_by_email(session, email) is not None:
            return False
        password, generated = obtain_password(from_stdin=password_stdin)
        admin, uri = create_admin(session, email, password, actor=cli_actor())
        address = admin.email
    console.print(f"administrator {address} created")
    console.print(
        "TOTP enrolment URI, shown once: add it to an authenticator app now "
        "(sign-in asks for its 6-digit code):"
    )
    print(uri)
    if generated:
        console.print("generated password, shown once (keep it in a password manager):")
        print(password)
    return True


@app.command()
@handle_errors
def create(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The administrator's address.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an administrator; print the TOTP enrolment URI (otpauth://...) once."""
    if not create_and_print(email, password_stdin=password_stdin):
        raise InvalidInputError(f"administrator {email} already exists")
