"""Recording and reading audit events. Services call ``record_event`` for every
administrative and licensing action, in the same transaction as the action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from portal.events.models import Event

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
