"""Recording and reading audit events. Services call ``record_event`` for every
administrative and licensing action, in the same transaction as the action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from portal.events.models import Event
from portal.pagination import Page, paginate

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.orm import Session

    from portal.events.tags import EventTag


def record_event(
    session: Session,
    tag: EventTag,
    *,
    actor: str,
    subject_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Event:
    """Add one event to the session (flushed, not committed)."""
    recorded = Event(tag=str(tag), actor=actor, subject_id=subject_id, payload=dict(payload or {}))
    session.add(recorded)
    session.flush()
    return recorded


def list_events(
    session: Session,
    *,
    tag: EventTag | None = None,
    subject_id: str | None = None,
    limit: int = 100,
) -> Sequence[Event]:
    """The newest events first, optionally only one tag or one subject's."""
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if tag is not None:
        query = query.where(Event.tag == str(tag))
    if subject_id is not None:
        query = query.where(Event.subject_id == subject_id)
    return session.scalars(query).all()


def page_events(
    session: Session,
    *,
    number: int,
    per_page: int,
    tag: str | None = None,
    subject_id: str | None = None,
) -> Page[Event]:
    """One page of the audit trail, newest first; ``tag`` may be a whole tag or
    just its subject (``application`` matches every ``application:*`` event).
    """
    query = select(Event).order_by(Event.id.desc())
    if tag:
        query = query.where(Event.tag == tag if ":" in tag else Event.tag.startswith(f"{tag}:"))
    if subject_id:
        query = query.where(Event.subject_id == subject_id)
    return paginate(session, query, number=number, per_page=per_page)


def subject_history(session: Session, subject_ids: Sequence[str]) -> Sequence[Event]:
    """Every event about any of ``subject_ids``, oldest first (an object's history)."""
    if not subject_ids:
        return []
    return session.scalars(
        select(Event).where(Event.subject_id.in_(subject_ids)).order_by(Event.id)
    ).all()
