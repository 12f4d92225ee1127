"""Magic links: hashed at rest, expiring, one-time when asked, one answer for every failure."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from portal.db_base import utc_now
from portal.errors import LinkUnusableError
from portal.magic_links.models import LinkPurpose, MagicLink
from portal.magic_links.service import (
    consume_link,
    create_link,
    resolve_link,
    usable_until,
    withdraw_links,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _link(session: Session, *, one_time: bool = True, days: int = 1) -> str:
    return create_link(
        session,
        LinkPurpose.LICENSE_DOWNLOAD,
        "subject-1",
        lifetime=timedelta(days=days),
        one_time=one_time,
    )


def test_only_a_hash_of_the_secret_is_stored(session: Session) -> None:
    token = _link(session)
    selector, secret = token.split(".")
    stored = session.get(MagicLink, selector)
    assert stored is not None
    assert secret not in stored.verifier_sha256
    assert len(secret) >= 43  # 256 bits


def test_a_one_time_link_works_once(session: Session) -> None:
    token = _link(session)
    assert consume_link(session, token, LinkPurpose.LICENSE_DOWNLOAD).subject_id == "subject-1"
    with pytest.raises(LinkUnusableError):
        consume_link(session, token, LinkPurpose.LICENSE_DOWNLOAD)
    with pytest.raises(LinkUnusableError):
        resolve_link(session, token, LinkPurpose.LICENSE_DOWNLOAD)


@pytest.mark.parametrize(
    "case", ["expired", "wrong secret", "unknown", "malformed", "other purpose", "withdrawn"]
)
def test_unusable_links_all_fail_alike(session: Session, case: str) -> None:
    token = _link(session)
    purpose = LinkPurpose.LICENSE_DOWNLOAD
    now = None
    if case == "expired":
        now = utc_now() + timedelta(days=1, seconds=1)
    elif case == "wrong secret":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif case == "unknown":
        token = "Z" * 22 + "." + "Y" * 43
    elif case == "malformed":
        token = "../../etc/passwd"  # noqa: S105
    elif case == "other purpose":
        purpose = LinkPurpose.ADMIN_INVITATION
    else:
        withdraw_links(session, purpose, "subject-1")
    with pytest.raises(LinkUnusableError) as raised:
        resolve_link(session, token, purpose, now=now)
    assert str(raised.value) == "This link is not valid: it may have expired or been used already."


def test_withdrawing_counts_the_links_that_still_worked(session: Session) -> None:
    purpose = LinkPurpose.LICENSE_DOWNLOAD
    now = utc_now()
    assert usable_until(session, purpose, "subject-1", now=now) is None
    _link(session, one_time=False, days=1)
    _link(session, one_time=False, days=3)
    expired = create_link(
        session, purpose, "subject-1", lifetime=timedelta(days=1), one_time=False,
        now=now - timedelta(days=2),
    )  # fmt: skip
    used = _link(session)
    consume_link(session, used, purpose)
    _link(session, days=5)
    until = usable_until(session, purpose, "subject-1", now=now)
    assert until is not None
    assert timedelta(days=4) < until - now < timedelta(days=5, minutes=1)  # the newest

    # The three unused links not yet expired; the expired and the used one do not count.
    assert withdraw_links(session, purpose, "subject-1", now=now) == 3
    assert usable_until(session, purpose, "subject-1", now=now) is None
    assert withdraw_links(session, purpose, "subject-1", now=now) == 0
    with pytest.raises(LinkUnusableError):
        resolve_link(session, expired, purpose)
