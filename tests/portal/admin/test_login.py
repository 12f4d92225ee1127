"""Signing in: password and TOTP both needed, one answer for every failure,
lockout after repeated failures, codes used once, sessions that end.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pyotp
import pytest
from sqlalchemy import select

from portal.admin import credentials
from portal.admin.models import Admin, AdminSession
from portal.admin.service import authenticate, invite_admin
from portal.db_base import utc_now
from portal.events.models import Event
from portal.mail.service import Postbox
from tests.portal.support import ADMIN_EMAIL, csrf_token, link_in, outbox, post_form, text_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import AdminAccount

FAILED = "The e-mail address, password or code is not right"


def _attempt(client: TestClient, email: str, password: str, code: str):
    return post_form(
        client,
        "/admin/login",
        "/admin/login",
        {"email": email, "password": password, "totp_code": code},
    )


def test_right_password_and_code_open_a_session(
    client: TestClient, admin_account: AdminAccount
) -> None:
    assert client.get("/admin/applications").status_code == 303
    response = admin_account.sign_in(client)
    assert response.headers["location"] == "/admin/applications"
    page = client.get("/admin/applications")
    assert page.status_code == 200
    assert f"Sign out {ADMIN_EMAIL}" in page.text


def test_login_returns_to_the_page_asked_for_but_never_off_site(
    client: TestClient, admin_account: AdminAccount
) -> None:
    first = client.get("/admin/audit")
    assert first.headers["location"] == "/admin/login?next=/admin/audit"
    page = client.get("/admin/login?next=https://evil.example/")
    assert 'name="next" value="/admin/applications"' in page.text
    response = post_form(
        client,
        "/admin/login?next=/admin/audit",
        "/admin/login",
        {
            "email": admin_account.email,
            "password": admin_account.password,
            "totp_code": admin_account.next_code(),
            "next": "/admin/audit",
        },
    )
    assert response.headers["location"] == "/admin/audit"


@pytest.mark.parametrize(
    "mistake", ["wrong password", "wrong code", "unknown address", "malformed code"]
)
def test_every_failure_gets_the_same_answer(
    client: TestClient, admin_account: AdminAccount, mistake: str
) -> None:
    email, password, code = admin_account.email, admin_account.password, admin_account.next_code()
    if mistake == "wrong password":
        password = "not the password at all"  # noqa: S105
    elif mistake == "wrong code":
        code = f"{(int(code) + 1) % 1_000_000:06d}"
    elif mistake == "unknown address":
        email = "nobody@portal.example"
    else:
        code = "12ab56"
    response = _attempt(client, email, password, code)
    assert response.status_code == 422
    assert FAILED in response.text
    assert "vigil_session" not in response.headers.get("set-cookie", "")
    assert 'value="' + email + '"' in response.text  # the address is kept, never the password
    assert password not in response.text


def test_unknown_and_known_addresses_take_similar_time(
    client: TestClient, admin_account: AdminAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []
    real_verify = credentials.verify_password

    def counting(stored_hash: str | None, password: str) -> bool:
        calls.append(stored_hash)
        return real_verify(stored_hash, password)

    monkeypatch.setattr("portal.admin.service.verify_password", counting)
    _attempt(client, "nobody@portal.example", "wrong password!", "000000")
    _attempt(client, admin_account.email, "wrong password!", "000000")
    # One argon2 verification each: against a decoy hash when the address is unknown.
    assert len(calls) == 2
    assert calls[0] is None
    assert calls[1] is not None


def test_five_failures_lock_the_account_and_mail_its_owner(
    client: TestClient, admin_account: AdminAccount, initialised: Settings, session: Session
) -> None:
    for _ in range(initialised.login_max_failures):
        assert _attempt(client, admin_account.email, "wrong password!", "000000").status_code == 422
    # Locked: even the right credentials fail, with the same message.
    locked = _attempt(
        client, admin_account.email, admin_account.password, admin_account.next_code()
    )
    assert locked.status_code == 422
    assert FAILED in locked.text
    admin = session.scalars(select(Admin).where(Admin.email == admin_account.email)).one()
    session.refresh(admin)
    assert admin.locked_until is not None
    assert admin.locked_until > utc_now() + timedelta(minutes=14)
    [notice] = [m for m in outbox(initialised.outbox_dir) if m["To"] == admin_account.email]
    assert "paused" in notice["Subject"]
    assert "web:testclient" in text_body(notice)
    tags = session.scalars(select(Event.tag).where(Event.subject_id == str(admin.id))).all()
    assert "admin:locked_out" in tags
    assert tags.count("admin:login_failed") == initialised.login_max_failures + 1


def test_the_lock_ends_after_its_time(
    session: Session, initialised: Settings, admin_account: AdminAccount
) -> None:
    postbox = Postbox.for_settings(initialised)
    now = utc_now()
    for _ in range(initialised.login_max_failures):
        assert not authenticate(
            session,
            initialised,
            postbox,
            email=admin_account.email,
            password="wrong password!",  # noqa: S106
            code="000000",
            actor="test",
            now=now,
        )
    later = now + timedelta(minutes=initialised.login_lockout_minutes, seconds=1)
    code = pyotp.TOTP(admin_account.secret).at(later)
    assert authenticate(
        session,
        initialised,
        postbox,
        email=admin_account.email,
        password=admin_account.password,
        code=code,
        actor="test",
        now=later,
    )


def test_a_code_is_accepted_once(client: TestClient, admin_account: AdminAccount) -> None:
    code = admin_account.next_code()
    admin_account.sign_in(client, code=code)
    client.post("/admin/logout", data={"csrf_token": csrf_token(client.get("/admin/admins"))})
    replayed = _attempt(client, admin_account.email, admin_account.password, code)
    assert replayed.status_code == 422


def test_codes_of_the_neighbouring_steps_are_accepted_for_clock_drift(
    admin_account: AdminAccount,
) -> None:
    now = utc_now()
    totp = pyotp.TOTP(admin_account.secret)
    step = totp.timecode(now)
    assert (
        credentials.verify_totp(
            admin_account.secret, totp.generate_otp(step - 1), last_step=None, now=now
        )
        == step - 1
    )
    assert (
        credentials.verify_totp(
            admin_account.secret, totp.generate_otp(step + 2), last_step=None, now=now
        )
        is None
    )


def test_logout_ends_the_session_on_the_server(
    client: TestClient, admin_account: AdminAccount, session: Session
) -> None:
    admin_account.sign_in(client)
    cookie = client.cookies["vigil_session"]
    response = client.post(
        "/admin/logout", data={"csrf_token": csrf_token(client.get("/admin/admins"))}
    )
    assert response.status_code == 303
    assert session.scalars(select(AdminSession)).all() == []
    client.cookies.set("vigil_session", cookie)  # a stolen copy of the cookie is useless now
    assert client.get("/admin/applications").status_code == 303


def test_an_expired_session_needs_a_new_login(
    client: TestClient, admin_account: AdminAccount, session: Session
) -> None:
    admin_account.sign_in(client)
    stored = session.scalars(select(AdminSession)).one()
    stored.expires_at = utc_now() - timedelta(seconds=1)
    session.flush()
    assert client.get("/admin/applications").status_code == 303


def test_an_invited_administrator_sets_a_password_and_totp(
    admin_client: TestClient,
    make_client: Callable[..., TestClient],
    initialised: Settings,
    session: Session,
) -> None:
    invited = post_form(
        admin_client, "/admin/admins", "/admin/admins/invite", {"email": "New.Admin@Portal.example"}
    )
    assert invited.status_code == 303
    [invitation] = [m for m in outbox(initialised.outbox_dir) if "invited" in m["Subject"]]
    assert invitation["To"] == "new.admin@portal.example"
    link = link_in(invitation, "/invitations/")

    # The invitee cannot sign in before enrolling.
    newcomer = make_client()
    assert (
        _attempt(newcomer, "new.admin@portal.example", "anything at all", "000000").status_code
        == 422
    )

    page = newcomer.get(link)
    assert page.status_code == 200
    assert "otpauth://totp/" in page.text
    secret = page.text.split('id="totp-secret">', 1)[1].split("<", 1)[0]
    totp = pyotp.TOTP(secret)
    mismatch = newcomer.post(
        link,
        data={
            "password": "a brand new password",
            "password_confirm": "different password!",
            "totp_code": totp.now(),
            "csrf_token": csrf_token(page),
        },
    )
    assert mismatch.status_code == 422
    assert "not the same" in mismatch.text
    done = newcomer.post(
        link,
        data={
            "password": "a brand new password",
            "password_confirm": "a brand new password",
            "totp_code": totp.now(),
            "csrf_token": csrf_token(page),
        },
    )
    assert done.status_code == 303
    assert newcomer.get(link).status_code == 410  # the invitation works once

    next_code = totp.at(time.time() + 30)
    signed_in = _attempt(newcomer, "new.admin@portal.example", "a brand new password", next_code)
    assert signed_in.status_code == 303
    admin = session.scalars(select(Admin).where(Admin.email == "new.admin@portal.example")).one()
    assert admin.invited_by is not None
    assert admin.invited_by.email == ADMIN_EMAIL
    assert "admin:invited" in admin_client.get("/admin/audit?tag=admin").text


def test_inviting_an_existing_administrator_is_refused(
    admin_client: TestClient, admin_account: AdminAccount
) -> None:
    response = post_form(
        admin_client, "/admin/admins", "/admin/admins/invite", {"email": admin_account.email}
    )
    assert "already exists" in admin_client.get(response.headers["location"]).text


def test_invitation_service_refuses_bad_addresses(
    session: Session, initialised: Settings, admin_account: AdminAccount
) -> None:
    inviter = session.scalars(select(Admin).where(Admin.email == admin_account.email)).one()
    from portal.errors import InvalidInputError  # noqa: PLC0415

    with pytest.raises(InvalidInputError):
        invite_admin(
            session,
            initialised,
            Postbox.for_settings(initialised),
            "not-an-address",
            inviter=inviter,
        )
