"""Administrators: creating and inviting them, signing in and out.

Rules of ``authenticate``:

- One answer for every failure (unknown address, pending invitation, wrong
  password, wrong or reused TOTP code, locked account), and the same work for
  each: one argon2 verification and one TOTP check, so neither the message nor
  the time tells whether an address belongs to an administrator.
- ``login_max_failures`` failures less than ``login_failure_window`` apart
  lock the account for ``login_lockout``; while locked even the right
  credentials fail. The administrator is e-mailed when the lock starts.
- Failures are recorded (counter, audit event) in the caller's transaction,
  so ``authenticate`` reports a failure by returning None, not by raising:
  the request commits the counter instead of rolling it back.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import delete, func, select

from portal.admin.credentials import (
    check_password_policy,
    hash_password,
    needs_rehash,
    new_totp_secret,
    totp_uri,
    verify_password,
    verify_totp,
)
from portal.admin.models import Admin, AdminSession
from portal.db_base import utc_now
from portal.errors import AdminNotFoundError, ConflictError, InvalidInputError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.forms import clean_email
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import consume_link, create_link, resolve_link

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from portal.mail.service import Postbox
    from portal.settings import Settings

SESSION_TOKEN_BYTES: Final = 32


def normalise_admin_email(email: str) -> str:
    """Raises InvalidInputError unless ``email`` is an address (returned lower-case)."""
    cleaned = clean_email(email)
    if cleaned is None:
        raise InvalidInputError(f"{email!r} is not an e-mail address")
    return cleaned.lower()


def get_admin_by_email(session: Session, email: str) -> Admin | None:
    cleaned = clean_email(email)
    if cleaned is None:
        return None
    return session.scalars(select(Admin).where(Admin.email == cleaned.lower())).one_or_none()


def get_admin(session: Session, admin_id: uuid.UUID) -> Admin:
    found = session.get(Admin, admin_id)
    if found is None:
        raise AdminNotFoundError(f"no administrator {admin_id}")
    return found


def list_admins(session: Session) -> Sequence[Admin]:
    return session.scalars(select(Admin).order_by(Admin.created_at, Admin.email)).all()


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Admin)) or 0


def _new_admin(session: Session, email: str, *, invited_by: Admin | None) -> Admin:
    address = normalise_admin_email(email)
    if get_admin_by_email(session, address) is not None:
        raise ConflictError(f"administrator {address} already exists")
    admin = Admin(email=address, totp_secret=new_totp_secret(), invited_by=invited_by)
    session.add(admin)
    session.flush()
    return admin


def create_admin(session: Session, email: str, password: str, *, actor: str) -> tuple[Admin, str]:
    """A new enrolled administrator and the ``otpauth://`` URI of its TOTP secret
    (shown once: the caller prints it for the authenticator app).

    Raises:
        InvalidInputError: Not an address, or the password is too short or long.
        ConflictError: The address is already an administrator.
    """
    check_password_policy(password)
    admin = _new_admin(session, email, invited_by=None)
    admin.password_hash = hash_password(password)
    admin.enrolled_at = utc_now()
    session.flush()
    record_event(
        session,
        EventTag.ADMIN_CREATED,
        actor=actor,
        subject_id=str(admin.id),
        payload={"email": admin.email},
    )
    return admin, totp_uri(admin.totp_secret, admin.email)


#### Invitations ####


def invite_admin(
    session: Session, settings: Settings, postbox: Postbox, email: str, *, inviter: Admin
) -> Admin:
    """A pending administrator and an e-mailed one-time link to set a password and TOTP."""
    admin = _new_admin(session, email, invited_by=inviter)
    token = create_link(
        session,
        LinkPurpose.ADMIN_INVITATION,
        str(admin.id),
        lifetime=timedelta(hours=settings.invitation_hours),
        one_time=True,
    )
    postbox.queue(
        "admin-invitation",
        to=admin.email,
        context={
            "inviter": inviter.email,
            "link": f"{settings.portal_url}/invitations/{token}",
            "hours": settings.invitation_hours,
        },
    )
    record_event(
        session,
        EventTag.ADMIN_INVITED,
        actor=inviter.email,
        subject_id=str(admin.id),
        payload={"email": admin.email},
    )
    return admin


def invited_admin(session: Session, token: str) -> Admin:
    """The pending administrator an invitation link is for.

    Raises:
        LinkUnusableError: The link is unknown, expired or used.
    """
    link = resolve_link(session, token, LinkPurpose.ADMIN_INVITATION)
    return get_admin(session, uuid.UUID(link.subject_id))


def invitation_totp_uri(admin: Admin) -> str:
    return totp_uri(admin.totp_secret, admin.email)


def accept_invitation(session: Session, token: str, *, password: str, code: str) -> Admin:
    """Set the invited administrator's password, once their TOTP app shows a valid code.

    Raises:
        LinkUnusableError: The link is unknown, expired or used.
        InvalidInputError: The password breaks the policy or the code is wrong.
    """
    admin = invited_admin(session, token)
    check_password_policy(password)
    now = utc_now()
    step = verify_totp(admin.totp_secret, code, last_step=admin.totp_last_step, now=now)
    if step is None:
        raise InvalidInputError("that code is not the one your authenticator app shows now")
    consume_link(session, token, LinkPurpose.ADMIN_INVITATION, now=now)
    admin.password_hash = hash_password(password)
    admin.enrolled_at = now
    admin.totp_last_step = step
    session.flush()
    record_event(session, EventTag.ADMIN_ENROLLED, actor=admin.email, subject_id=str(admin.id))
    return admin


#### Signing in ####


def _register_failure(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    admin: Admin,
    *,
    now: datetime,
    actor: str,
    reason: str,
) -> None:
    window = timedelta(minutes=settings.login_failure_window_minutes)
    if admin.last_failed_login_at is None or now - admin.last_failed_login_at > window:
        admin.failed_login_count = 0
    admin.failed_login_count += 1
    admin.last_failed_login_at = now
    record_event(
        session,
        EventTag.ADMIN_LOGIN_FAILED,
        actor=actor,
        subject_id=str(admin.id),
        payload={"reason": reason, "failures": admin.failed_login_count},
    )
    if admin.failed_login_count >= settings.login_max_failures:
        admin.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        admin.failed_login_count = 0
        record_event(
            session,
            EventTag.ADMIN_LOCKED_OUT,
            actor=actor,
            subject_id=str(admin.id),
            payload={"until": admin.locked_until.isoformat()},
        )
        postbox.queue(
            "admin-locked",
            to=admin.email,
            context={
                "failures": settings.login_max_failures,
                "minutes": settings.login_lockout_minutes,
                "until": admin.locked_until,
                "actor": actor,
            },
        )
    session.flush()


def authenticate(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    *,
    email: str,
    password: str,
    code: str,
    actor: str,
    now: datetime | None = None,
) -> Admin | None:
    """The administrator these credentials sign in, or None (see the module rules)."""
    now = now or utc_now()
    admin = get_admin_by_email(session, email)
    enrolled = admin is not None and admin.is_enrolled
    password_ok = verify_password(admin.password_hash if admin and enrolled else None, password)
    step = verify_totp(
        admin.totp_secret if admin else new_totp_secret(),
        code,
        last_step=admin.totp_last_step if admin else None,
        now=now,
    )
    if admin is None or not enrolled:
        return None
    if admin.locked_until is not None and admin.locked_until > now:
        record_event(
            session,
            EventTag.ADMIN_LOGIN_FAILED,
            actor=actor,
            subject_id=str(admin.id),
            payload={"reason": "locked"},
        )
        return None
    if not password_ok or step is None:
        reason = "password" if not password_ok else "totp"
        _register_failure(session, settings, postbox, admin, now=now, actor=actor, reason=reason)
        return None
    admin.failed_login_count = 0
    admin.last_failed_login_at = None
    admin.locked_until = None
    admin.totp_last_step = step
    admin.last_login_at = now
    if admin.password_hash and needs_rehash(admin.password_hash):
        admin.password_hash = hash_password(password)
    session.flush()
    record_event(session, EventTag.ADMIN_LOGGED_IN, actor=admin.email, subject_id=str(admin.id))
    return admin


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(session: Session, settings: Settings, admin: Admin) -> str:
    """A new session for ``admin``; returns the cookie's token (only its hash is kept)."""
    now = utc_now()
    # Expired sessions of anyone are cleared here, rather than by a scheduled job.
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    session.add(
        AdminSession(
            id=_session_id(token),
            admin=admin,
            created_at=now,
            expires_at=now + settings.session_lifetime,
        )
    )
    session.flush()
    return token


def admin_for_session(session: Session, token: str) -> Admin | None:
    """The signed-in administrator of a session cookie, or None (unknown or expired)."""
    if not token or len(token) > 128:
        return None
    found = session.get(AdminSession, _session_id(token))
    if found is None or found.expires_at <= utc_now():
        return None
    return found.admin


def end_session(session: Session, token: str, *, admin: Admin) -> None:
    session.execute(delete(AdminSession).where(AdminSession.id == _session_id(token)))
    record_event(session, EventTag.ADMIN_LOGGED_OUT, actor=admin.email, subject_id=str(admin.id))
