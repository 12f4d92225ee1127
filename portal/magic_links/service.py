"""Creating, checking and consuming magic links.

Rules:

- A token carries 256 bits of secret (``secrets.token_urlsafe(32)``); only its
  SHA-256 is stored (``models.MagicLink``).
- Unknown, malformed, expired, already used and wrong-purpose tokens all raise
  the same ``LinkUnusableError``, whose message does not say which.
- Consuming a one-time link is a conditional ``UPDATE ... WHERE used_at IS
  NULL``: of two simultaneous uses, exactly one wins.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, select, update

from portal.db_base import utc_now
from portal.errors import LinkUnusableError
from portal.magic_links.models import LinkPurpose, MagicLink

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_TOKEN: Final = re.compile(r"([A-Za-z0-9_-]{16,32})\.([A-Za-z0-9_-]{32,64})")
UNUSABLE_MESSAGE: Final = "This link is not valid: it may have expired or been used already."


def _digest(verifier: str) -> str:
    return hashlib.sha256(verifier.encode("ascii")).hexdigest()


def create_link(
    session: Session,
    purpose: LinkPurpose,
    subject_id: str,
    *,
    lifetime: timedelta,
    one_time: bool,
    now: datetime | None = None,
) -> str:
    """A new link's token (shown once: it is not stored)."""
    now = now or utc_now()
    selector = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(32)
    session.add(
        MagicLink(
            id=selector,
            verifier_sha256=_digest(verifier),
            purpose=purpose,
            subject_id=subject_id,
            one_time=one_time,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return f"{selector}.{verifier}"


def resolve_link(
    session: Session, token: str, purpose: LinkPurpose, *, now: datetime | None = None
) -> MagicLink:
    """The link ``token`` opens, if it is usable now.

    Raises:
        LinkUnusableError: Unknown, malformed, expired, used or another purpose's.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise LinkUnusableError(UNUSABLE_MESSAGE)
    selector, verifier = match.groups()
    link = session.get(MagicLink, selector)
    expected = link.verifier_sha256 if link is not None else "0" * 64
    matches = hmac.compare_digest(expected, _digest(verifier))
    now = now or utc_now()
    if (
        link is None
        or not matches
        or link.purpose is not purpose
        or link.used_at is not None
        or link.expires_at <= now
    ):
        raise LinkUnusableError(UNUSABLE_MESSAGE)
    return link


def consume_link(
    session: Session, token: str, purpose: LinkPurpose, *, now: datetime | None = None
) -> MagicLink:
    """Resolve a one-time link and mark it used, atomically.

    Raises:
        LinkUnusableError: As ``resolve_link``, or another request used it first.
    """
    now = now or utc_now()
    link = resolve_link(session, token, purpose, now=now)
    result = session.execute(
        update(MagicLink)
        .where(MagicLink.id == link.id, MagicLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if getattr(result, "rowcount", 0) != 1:
        raise LinkUnusableError(UNUSABLE_MESSAGE)
    return link


def withdraw_links(
    session: Session, purpose: LinkPurpose, subject_id: str, *, now: datetime | None = None
) -> int:
    """Make every usable link of ``purpose`` for ``subject_id`` unusable; how many."""
    now = now or utc_now()
    result = session.execute(
        update(MagicLink)
        .where(
            MagicLink.purpose == purpose,
            MagicLink.subject_id == subject_id,
            MagicLink.used_at.is_(None),
            MagicLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0))


def usable_until(
    session: Session, purpose: LinkPurpose, subject_id: str, *, now: datetime | None = None
) -> datetime | None:
    """When the last usable link of ``purpose`` for ``subject_id`` expires (None: none is)."""
    return session.scalar(
        select(func.max(MagicLink.expires_at)).where(
            MagicLink.purpose == purpose,
            MagicLink.subject_id == subject_id,
            MagicLink.used_at.is_(None),
            MagicLink.expires_at > (now or utc_now()),
        )
    )
