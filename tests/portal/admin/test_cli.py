"""``vigil-portal admin create`` and ``init --admin-email``: administrators on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pyotp
from sqlalchemy import select

from portal.admin.models import Admin
from portal.admin.service import authenticate
from portal.events.models import Event
from portal.mail.service import Postbox

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import PortalCli


def _uri(stdout: str) -> str:
    [uri] = [line for line in stdout.splitlines() if line.startswith("otpauth://")]
    return uri


def _signs_in(session: Session, settings: Settings, email: str, password: str, uri: str) -> bool:
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    admin = authenticate(
        session,
        settings,
        Postbox.for_settings(settings),
        email=email,
        password=password,
        code=pyotp.TOTP(secret).now(),
        actor="test",
    )
    return admin is not None


def test_admin_create_reads_the_password_from_stdin_and_prints_the_uri_once(
    cli: PortalCli, session: Session, initialised: Settings
) -> None:
    result = cli.with_input(
        "a strong enough password\n", "admin", "create", "Ops@Portal.example", "--password-stdin"
    )
    assert result.exit_code == 0, result.stderr
    uri = _uri(result.stdout)
    assert uri.startswith("otpauth://totp/Vigil%20portal:ops%40portal.example?")
    assert "a strong enough password" not in result.stdout
    assert _signs_in(session, initialised, "ops@portal.example", "a strong enough password", uri)
    [event] = session.scalars(select(Event).where(Event.tag == "admin:created")).all()
    assert event.payload == {"email": "ops@portal.example"}
    assert uri not in str(event.payload)

    again = cli("admin", "create", "ops@portal.example", "--password-stdin")
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert "otpauth://" not in again.stdout


def test_admin_create_refuses_a_short_password(cli: PortalCli, initialised: Settings) -> None:
    result = cli.with_input("short\n", "admin", "create", "a@b.example", "--password-stdin")
    assert result.exit_code == 2
    assert "at least 12 characters" in result.stderr


def test_admin_create_without_a_terminal_generates_and_prints_a_password(
    cli: PortalCli, session: Session, initialised: Settings
) -> None:
    result = cli("admin", "create", "gen@portal.example")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    password = lines[lines.index(next(line for line in lines if "generated password" in line)) + 1]
    assert len(password) >= 12
    assert _signs_in(session, initialised, "gen@portal.example", password, _uri(result.stdout))


def test_init_creates_the_first_administrator_once(
    cli: PortalCli, session: Session, settings: Settings
) -> None:
    first = cli.with_input(
        "the first admin password\n",
        "init",
        "--admin-email",
        "first@portal.example",
        "--password-stdin",
    )
    assert first.exit_code == 0, first.stderr
    uri = _uri(first.stdout)
    assert _signs_in(session, settings, "first@portal.example", "the first admin password", uri)

    second = cli("init", "--admin-email", "first@portal.example")
    assert second.exit_code == 0, second.stderr
    assert "administrator first@portal.example exists" in second.stdout
    assert "otpauth://" not in second.stdout
    assert len(session.scalars(select(Admin)).all()) == 1
